"""Member registry import from the insurer's CSV extract (SPEC §2).

Two passes over the file, streamed line by line so a file of any size fits in
memory: the first checks every line and collects every problem (a file with
no row after its header is one); only a file without any problem is imported,
by the second pass, in batches inside one transaction committed at the end.
The import is an idempotent upsert keyed on the member number: new members
are added, changed ones updated, identical ones left untouched, and members
absent from the file are left as they are.

CSV format: UTF-8 (with or without BOM), ``;`` or ``,`` as delimiter, a header
row naming the columns of ``COLUMNS`` in any order. The postal address columns
(``ADDRESS_COLUMNS``) are optional: a file without them leaves the stored
addresses as they are; with them, an empty address erases the stored one.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import BindParameter, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from idp import events
from idp.db import utcnow
from idp.identifiers import (
    DD_MM_YYYY,
    YYYY_MM_DD,
    has_invisible,
    parse_birth_date,
    parse_email,
    parse_member_number,
    parse_mobile,
)
from idp.registry.models import KINDS, ROLES, STATUSES, Member
from idp.registry.nir import InvalidNir, validate_nir
from idp.registry.postal import (
    DEFAULT_COUNTRY,
    MAX_LINE_LENGTH,
    InvalidAddress,
    check_country,
    check_postcode,
    check_text,
)
from idp.tenancy import Tenant

BIRTH_DATE_LAYOUTS = (YYYY_MM_DD, DD_MM_YYYY)
# Column: what it holds (shown by `idp members import --help`).
COLUMNS: dict[str, str] = {
    "member_number": "8 digits, unique in the file (the key of the upsert)",
    "nir": "social security number, 15 characters with its key; optional",
    "last_name": "1 to 100 characters",
    "first_name": "1 to 100 characters",
    "birth_date": f"{' or '.join(BIRTH_DATE_LAYOUTS)}, not in the future",
    "role": " | ".join(ROLES),
    "kind": " | ".join(KINDS),
    "email": "optional; stored lowercased",
    "mobile": "optional; a mobile number (French unless it starts with +)",
    "status": " | ".join(STATUSES),
    "address_line1": f"optional: the postal address's first line, at most {MAX_LINE_LENGTH} characters",
    "address_line2": f"optional: a second line (building, post box), at most {MAX_LINE_LENGTH}",
    "address_line3": f"optional: a third line (locality), at most {MAX_LINE_LENGTH}",
    "postcode": "5 digits in France; needed with an address",
    "city": f"needed with an address; with the postcode at most {MAX_LINE_LENGTH - 1} characters",
    "country": "ISO 3166-1 alpha-2 code; empty: FR",
}
# The columns a file may leave out; with any of them, those of ADDRESS_NEEDS must be there too.
ADDRESS_COLUMNS = ("address_line1", "address_line2", "address_line3", "postcode", "city", "country")
ADDRESS_NEEDS = ("address_line1", "postcode", "city")
REQUIRED_COLUMNS = tuple(name for name in COLUMNS if name not in ADDRESS_COLUMNS)
FIELDS = tuple(COLUMNS)  # the Member attributes an import may set
BATCH_SIZE = 1000
MAX_NAME_LENGTH = 100
# A member's line holds sixteen short fields and the header names them: a longer line is not
# from a member extract (and is never read whole).
MAX_LINE_BYTES = 64 * 1024
MAX_KEPT_ERRORS = 1000  # the report counts every error but keeps only the first ones

Progress = Callable[[int], Any]


class ImportAborted(Exception):
    """The file changed between the check and the import, or another import of the tenant's
    members is under way; nothing was imported."""


class NotMemberText(Exception):
    """The file is not lines of text at all (a binary file, a damaged or foreign export), so
    its lines cannot be checked one by one; nothing was imported. The message says why."""


@dataclass(frozen=True)
class LineError:
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


@dataclass
class ImportReport:
    """What an import found (first pass) and did (second pass)."""

    rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    error_count: int = 0
    errors: list[LineError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def add_error(self, line: int, field_name: str, reason: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append(LineError(line, field_name, reason))

    def summary(self) -> str:
        return f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged"


def read_lines(path: str | Path) -> Iterator[bytes]:
    """The file's lines as bytes, read lazily (decoding happens per line, to report bad ones);
    a line longer than ``MAX_LINE_BYTES`` comes cut after them, and is refused as such."""
    with open(path, "rb") as file:
        while line := file.readline(MAX_LINE_BYTES + 1):
            yield line


def count_lines(path: str | Path) -> int:
    """Number of lines after the header (for a progress bar), once the file is known to be text
    lines: raises ``NotMemberText`` as the importer would, before anything is shown."""
    lines = _Lines(read_lines(path))
    return max(0, sum(1 for _ in lines) - 1)


class MemberImporter:
    """Checks then upserts the member records of one tenant from CSV lines.

    ``check`` never writes. ``apply`` owns its transaction: it commits once, at
    the end, and rolls everything back if anything goes wrong. Both raise
    ``NotMemberText`` for a file that is not text lines: a NUL byte (which
    PostgreSQL cannot store either), lines ended by CR alone (the whole file
    would read as one line), a line longer than ``MAX_LINE_BYTES``.
    """

    def __init__(
        self,
        session: Session,
        tenant: Tenant,
        *,
        today: date | None = None,
        batch_size: int = BATCH_SIZE,
    ):
        self.session = session
        self.tenant = tenant
        self.today = today or date.today()
        self.batch_size = batch_size
        self._tenant_had_members = True
        # The Member attributes this file sets: all but the address columns it leaves out.
        self.fields: tuple[str, ...] = REQUIRED_COLUMNS

    def check(self, lines: Iterable[bytes | str], progress: Progress | None = None) -> ImportReport:
        """First pass: every problem of every line, with its line number."""
        report = ImportReport()
        seen: dict[str, int] = {}
        for line, record, problems in self._records(lines, report, progress):
            for field_name, reason in problems:
                report.add_error(line, field_name, reason)
            number = record.get("member_number")
            if number is None:
                continue
            if number in seen:
                report.add_error(line, "member_number", f"duplicate of line {seen[number]}")
            else:
                seen[number] = line
        return report

    def apply(
        self,
        lines: Iterable[bytes | str],
        progress: Progress | None = None,
        *,
        source: str | None = None,
    ) -> ImportReport:
        """Second pass, on a file ``check`` accepted: upsert in batches, one commit at the end."""
        report = ImportReport()
        try:
            self._one_import_at_a_time()
            self._tenant_had_members = self.session.scalar(
                select(Member.id).where(Member.tenant == self.tenant.slug).limit(1)
            ) is not None
            batch: list[dict[str, Any]] = []
            for line, record, problems in self._records(lines, report, progress):
                if problems or report.error_count:
                    raise ImportAborted(
                        f"line {line} changed since it was checked; run the import again"
                    )
                batch.append(record)
                if len(batch) >= self.batch_size:
                    self._upsert(batch, report)
                    batch = []
            if report.error_count:
                raise ImportAborted(f"{report.errors[0]}; run the import again")
            if batch:
                self._upsert(batch, report)
            events.record_event(
                self.session, events.MEMBERS_IMPORTED, tenant=self.tenant.slug, source=source,
                rows=report.rows, added=report.added, updated=report.updated,
                unchanged=report.unchanged,
            )
            self.session.commit()
        except BaseException:
            self.session.rollback()
            raise
        return report

    def _one_import_at_a_time(self) -> None:
        """Take the tenant's import lock for this transaction (PostgreSQL's advisory lock), or
        refuse at once: two imports at once would both add the members new to each, and the
        second fail on the first's rows. (SQLite takes its one write lock at the first insert.)"""
        if self.session.get_bind().dialect.name != "postgresql":
            return
        name = f"idp members import {self.tenant.slug}".encode()
        key = int.from_bytes(hashlib.sha256(name).digest()[:8], "big", signed=True)
        if not self.session.scalar(select(func.pg_try_advisory_xact_lock(key))):
            raise ImportAborted(f"another import of {self.tenant.slug}'s members is under way; "
                                "run this one again once it has finished")

    # -- reading ---------------------------------------------------------------

    def _records(
        self, lines: Iterable[bytes | str], report: ImportReport, progress: Progress | None
    ) -> Iterator[tuple[int, dict[str, Any], list[tuple[str, str]]]]:
        """(line number, record, problems) for each data line; file-level errors go to report."""
        source = _Lines(lines)
        header_text = next(source, None)
        if header_text is None or not header_text.strip():
            report.add_error(
                1, "header", f"the file must start with a header row: {', '.join(COLUMNS)}"
            )
            return
        delimiter = ";" if header_text.count(";") > header_text.count(",") else ","
        names = next(csv.reader([header_text], delimiter=delimiter))
        header = [name.strip().lower() for name in names]
        if not self._header_ok(header, report) or 1 in source.bad:
            if 1 in source.bad:
                report.add_error(1, "header", "not valid UTF-8")
            return
        self.fields = tuple(name for name in FIELDS if name in header)
        reader = csv.reader(source, delimiter=delimiter)
        done = 1
        while True:
            start = source.number + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                report.rows += 1
                report.add_error(start, "line", f"not readable as CSV ({exc})")
                continue
            finally:
                if progress is not None and source.number > done:
                    progress(source.number - done)
                done = source.number
            if not any(value.strip() for value in fields):
                continue  # a blank line
            report.rows += 1
            if any(number in source.bad for number in range(start, source.number + 1)):
                yield start, {}, [("line", "not valid UTF-8")]
                continue
            if len(fields) != len(header):
                yield start, {}, [("line", f"expected {len(header)} fields, found {len(fields)}")]
                continue
            yield start, *self._parse(dict(zip(header, fields, strict=True)))
        if not report.rows:
            # An extract cut short after its header would otherwise "succeed" with no change.
            report.add_error(1, "header", "no rows follow it: the file names no member")

    def _header_ok(self, header: list[str], report: ImportReport) -> bool:
        missing = [name for name in REQUIRED_COLUMNS if name not in header]
        if any(name in header for name in ADDRESS_COLUMNS):
            missing += [name for name in ADDRESS_NEEDS if name not in header]
        unknown = [name for name in header if name not in COLUMNS]
        repeated = sorted({name for name in header if header.count(name) > 1})
        if missing:
            report.add_error(1, "header", f"missing column(s): {', '.join(missing)}")
        if unknown:
            report.add_error(1, "header", f"unknown column(s): {', '.join(unknown)}")
        if repeated:
            report.add_error(1, "header", f"repeated column(s): {', '.join(repeated)}")
        return not (missing or unknown or repeated)

    # -- checking one line -------------------------------------------------------

    def _parse(self, raw: dict[str, str]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """The record to store, and what is wrong with the line (field, reason)."""
        values = {name: value.strip() for name, value in raw.items()}
        record: dict[str, Any] = {}
        problems: list[tuple[str, str]] = []
        for name in self.fields:
            if name == "postcode":
                continue  # checked with the country, below
            try:
                record[name] = getattr(self, f"_{name}")(values[name])
            except ValueError as exc:
                problems.append((name, str(exc)))
        if "postcode" in self.fields and not any(name in ADDRESS_COLUMNS for name, _ in problems):
            problems += self._address(values, record)
        return record, problems

    @staticmethod
    def _address(values: dict[str, str], record: dict[str, Any]) -> list[tuple[str, str]]:
        """The postcode (its form depends on the country), and an address that is whole or absent."""
        # Without a country column the address is French; with a bad country, its error is enough.
        country = record.get("country") if "country" in values else DEFAULT_COUNTRY
        record["postcode"] = values["postcode"] or None
        if record["postcode"] and country:
            try:
                record["postcode"] = check_postcode(values["postcode"], country)
            except InvalidAddress as exc:
                return [("postcode", str(exc))]
        given = [name for name in ADDRESS_COLUMNS if name != "country" and record.get(name)]
        if not given:
            return []
        missing = [name for name in ADDRESS_NEEDS if not record.get(name)]
        if missing:
            return [("address", f"incomplete: {', '.join(missing)} missing")]
        if len(record["postcode"]) + 1 + len(record["city"]) > MAX_LINE_LENGTH:
            return [("city", f"with the postcode, longer than {MAX_LINE_LENGTH} characters")]
        return []

    @staticmethod
    def _member_number(value: str) -> str:
        return parse_member_number(value)

    @staticmethod
    def _nir(value: str) -> str | None:
        if not value:
            return None
        try:
            return validate_nir(value).value
        except InvalidNir as exc:
            # The reason, never the value: a NIR is personal data and reports get shared.
            raise ValueError(f"invalid NIR ({exc.reason}): {exc}") from None

    @staticmethod
    def _name(value: str) -> str:
        if not value:
            raise ValueError("is required")
        if len(value) > MAX_NAME_LENGTH:
            raise ValueError(f"is longer than {MAX_NAME_LENGTH} characters")
        if has_invisible(value):
            raise ValueError("contains a control or invisible character")
        return value

    _last_name = _name
    _first_name = _name

    def _birth_date(self, value: str) -> date:
        return parse_birth_date(value, today=self.today, layouts=BIRTH_DATE_LAYOUTS)

    @staticmethod
    def _choice(value: str, allowed: tuple[str, ...]) -> str:
        value = value.lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value

    def _role(self, value: str) -> str:
        return self._choice(value, ROLES)

    def _kind(self, value: str) -> str:
        return self._choice(value, KINDS)

    def _status(self, value: str) -> str:
        return self._choice(value, STATUSES)

    @staticmethod
    def _email(value: str) -> str | None:
        return parse_email(value) if value else None

    @staticmethod
    def _mobile(value: str) -> str | None:
        return parse_mobile(value) if value else None

    @staticmethod
    def _address_line(value: str) -> str | None:
        return check_text(value) or None

    _address_line1 = _address_line
    _address_line2 = _address_line
    _address_line3 = _address_line
    _city = _address_line

    @staticmethod
    def _country(value: str) -> str:
        return check_country(value)

    # -- writing ---------------------------------------------------------------

    def _upsert(self, batch: list[dict[str, Any]], report: ImportReport) -> None:
        """One query for the batch's existing members, then bulk inserts and updates."""
        existing = self._existing([record["member_number"] for record in batch])
        now = utcnow()
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for record in batch:
            row = existing.get(record["member_number"])
            if row is None:
                inserts.append({**record, "tenant": self.tenant.slug, "updated_at": now})
            elif any(getattr(row, name) != record[name] for name in self.fields):
                updates.append({**record, "id": row.id, "updated_at": now})
            else:
                report.unchanged += 1
        if inserts:
            self.session.execute(insert(Member), inserts)
            report.added += len(inserts)
        if updates:
            self.session.execute(update(Member), updates)
            report.updated += len(updates)

    def _existing(self, numbers: list[str]) -> dict[str, Any]:
        if not self._tenant_had_members:
            # A first load: nothing to compare with (rows this import adds never recur in it).
            return {}
        # The numbers are inlined as literals (they are 8 validated digits): with 1000 bind
        # parameters PostgreSQL's generic plan compares every row with each of them in turn.
        numbers_in: BindParameter[list[str]] = bindparam(
            "numbers", numbers, expanding=True, literal_execute=True)
        query = select(Member.id, *(getattr(Member, name) for name in self.fields)).where(
            Member.tenant == self.tenant.slug, Member.member_number.in_(numbers_in)
        )
        return {row.member_number: row for row in self.session.execute(query)}


def import_members(
    session: Session, tenant: Tenant, path: str | Path, *, today: date | None = None
) -> ImportReport:
    """Check the file, then import it if it has no error; the report says which happened."""
    importer = MemberImporter(session, tenant, today=today)
    report = importer.check(read_lines(path))
    if not report.ok:
        return report
    return importer.apply(read_lines(path), source=Path(path).name)


class _Lines:
    """Decodes lines one at a time, remembering their numbers and which were not UTF-8."""

    def __init__(self, lines: Iterable[bytes | str]):
        self._lines = iter(lines)
        self.number = 0
        self.bad: set[int] = set()

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.number += 1
        if isinstance(line, bytes):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                self.bad.add(self.number)
                text = line.decode("utf-8", "replace")
        else:
            text = line
        self._check(text, len(line))
        return text.removeprefix("\ufeff") if self.number == 1 else text

    def _check(self, text: str, length: int) -> None:
        if "\0" in text:
            raise NotMemberText(f"line {self.number} holds a NUL byte: not a CSV text file (a "
                                "binary file, or a damaged export)")
        # A header never holds a line break: one there ends the lines of an old Mac export.
        if self.number == 1 and "\r" in text.rstrip("\r\n"):
            raise NotMemberText("its lines end with CR alone (an old Mac export): save it with "
                                "LF or CRLF line endings")
        if length > MAX_LINE_BYTES:
            raise NotMemberText(f"line {self.number} is longer than {MAX_LINE_BYTES} bytes: not "
                                "a member file")
