"""The member registry import service: per-line checks, the two passes, the upsert (SPEC §2)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from idp import events
from idp.events import AuditEvent
from idp.registry import importer as importer_module
from idp.registry.importer import (
    COLUMNS,
    ImportAborted,
    LineError,
    MemberImporter,
    NotMemberText,
    count_lines,
    import_members,
    read_lines,
)
from idp.registry.models import Member

TODAY = date(2026, 6, 1)
HEADER = ";".join(COLUMNS)


def nir_with_key(first13: str) -> str:
    return f"{first13}{97 - int(first13) % 97:02d}"


def line(sep: str = ";", **fields: str) -> str:
    values = {
        "member_number": "10000001",
        "nir": "",
        "last_name": "Martin",
        "first_name": "Jeanne",
        "birth_date": "1958-03-14",
        "role": "principal",
        "kind": "health",
        "email": "",
        "mobile": "",
        "status": "active",
        "address_line1": "",
        "address_line2": "",
        "address_line3": "",
        "postcode": "",
        "city": "",
        "country": "",
    }
    values.update(fields)
    return sep.join(values[name] for name in COLUMNS)


def csv_lines(*rows: str, header: str = HEADER) -> list[str]:
    """The physical lines of a CSV file, as a file yields them."""
    return "".join(f"{text}\n" for text in (header, *rows)).splitlines(keepends=True)


@pytest.fixture
def tenant(app):
    return app.extensions["idp"].tenants["miel"]


@pytest.fixture
def importer(db, tenant):
    return MemberImporter(db, tenant, today=TODAY, batch_size=3)


def members(db, tenant="miel") -> dict[str, Member]:
    db.rollback()
    return {
        member.member_number: member
        for member in db.scalars(select(Member).where(Member.tenant == tenant))
    }


def errors(report) -> list[tuple[int, str]]:
    return [(error.line, error.field) for error in report.errors]


class TestCheck:
    def test_a_valid_file_has_no_error(self, importer):
        nir = nir_with_key("2690549588157")
        report = importer.check(csv_lines(
            line(nir=nir, email="Jeanne.Martin@Example.org", mobile="06 12 34 56 78"),
            line(member_number="10000002", role="beneficiary", kind="pension", status="terminated"),
        ))

        assert report.ok, report.errors
        assert report.rows == 2

    def test_each_bad_field_is_reported_with_its_line(self, importer):
        report = importer.check(csv_lines(
            line(member_number="10000001"),
            line(member_number="1234567", birth_date="14/03/58", email="nope"),
            line(member_number="10000003"),
            line(member_number="10000004", role="spouse", mobile="01 23 45 67 89"),
        ))

        assert not report.ok
        assert errors(report) == [
            (3, "member_number"), (3, "birth_date"), (3, "email"),
            (5, "role"), (5, "mobile"),
        ]
        assert report.error_count == 5
        assert str(report.errors[0]) == "line 3: member_number: must be exactly 8 digits"

    @pytest.mark.parametrize(
        ("field", "value", "reason"),
        [
            ("member_number", "", "is required"),
            ("member_number", "1234567A", "8 digits"),
            ("member_number", "123456789", "8 digits"),
            ("nir", "269054958815700", "invalid NIR (key)"),
            ("nir", "2690549588157", "invalid NIR (format)"),
            ("nir", "569054958815780", "invalid NIR (sex)"),
            ("last_name", "", "is required"),
            ("first_name", "  ", "is required"),
            ("first_name", "x" * 101, "longer than 100"),
            ("birth_date", "1958-02-30", "not a valid date"),
            ("birth_date", "31/02/1958", "not a valid date"),
            ("birth_date", "1958/03/14", "expected YYYY-MM-DD or DD/MM/YYYY"),
            ("birth_date", "2026-06-02", "in the future"),
            ("birth_date", "1899-12-31", "before 1900"),
            ("role", "spouse", "principal, beneficiary"),
            ("kind", "life", "health, pension, provident"),
            ("status", "dead", "active, terminated"),
            ("email", "jeanne@", "not a valid email"),
            ("email", "jeanne martin@example.org", "not a valid email"),
            ("mobile", "abc", "not a phone number"),
            ("mobile", "06 12", "not a valid phone number"),
            ("mobile", "01 23 45 67 89", "not a mobile number"),
        ],
    )
    def test_field_rules(self, importer, field, value, reason):
        report = importer.check(csv_lines(line(**{field: value})))

        assert len(report.errors) == 1, report.errors
        (error,) = report.errors
        assert (error.line, error.field) == (2, field)
        assert reason in error.reason

    def test_a_nir_in_an_error_is_not_echoed(self, importer):
        report = importer.check(csv_lines(line(nir="269054958815700")))

        assert "2690549588157" not in str(report.errors[0])

    def test_duplicate_member_numbers_in_the_file(self, importer):
        report = importer.check(csv_lines(
            line(member_number="10000001"),
            line(member_number="10000002"),
            line(member_number="10000001", first_name="Paul"),
        ))

        assert report.errors == [LineError(4, "member_number", "duplicate of line 2")]

    def test_wrong_number_of_fields(self, importer):
        report = importer.check(csv_lines(line() + ";extra", "10000002;Martin"))

        assert [str(error) for error in report.errors] == [
            "line 2: line: expected 16 fields, found 17",
            "line 3: line: expected 16 fields, found 2",
        ]

    @pytest.mark.parametrize(
        ("header", "reason"),
        [
            (HEADER.replace(";mobile", ""), "missing column(s): mobile"),
            (HEADER + ";phone", "unknown column(s): phone"),
            (HEADER + ";email", "repeated column(s): email"),
        ],
    )
    def test_header_problems_stop_the_check(self, importer, header, reason):
        report = importer.check(csv_lines(line(), header=header))

        assert [(error.line, error.field) for error in report.errors] == [(1, "header")]
        assert reason in report.errors[0].reason
        assert report.rows == 0

    def test_an_empty_file(self, importer):
        report = importer.check([])

        assert errors(report) == [(1, "header")]

    def test_a_header_with_no_row_after_it(self, importer):
        report = importer.check(csv_lines("", ";;"))

        assert [str(error) for error in report.errors] == [
            "line 1: header: no rows follow it: the file names no member"]
        assert report.rows == 0

    def test_header_columns_in_any_order_and_case(self, importer):
        names = list(reversed(COLUMNS))
        values = line().split(";")
        row = ";".join(reversed(values))

        report = importer.check([";".join(name.upper() for name in names) + "\n", row + "\n"])

        assert report.ok, report.errors

    def test_comma_delimiter_bom_crlf_and_quotes(self, importer):
        raw = "\ufeff" + HEADER.replace(";", ",") + "\r\n" + line(
            sep=",", last_name='"Martin, épouse Durand"'
        ) + "\r\n"

        report = importer.check(raw.splitlines(keepends=True))

        assert report.ok, report.errors

    def test_bytes_not_in_utf8_are_reported_with_their_line(self, importer):
        lines = [
            f"{HEADER}\n".encode(),
            f"{line()}\n".encode(),
            f"{line(member_number='10000002', last_name='Hélène')}\n".encode("latin-1"),
        ]

        report = importer.check(lines)

        assert [str(error) for error in report.errors] == ["line 3: line: not valid UTF-8"]

    def test_blank_lines_are_skipped_but_counted_in_line_numbers(self, importer):
        report = importer.check(csv_lines(line(), "", line(member_number="1")))

        assert errors(report) == [(4, "member_number")]
        assert report.rows == 2

    def test_a_quoted_field_over_two_lines_is_reported_at_its_first_line(self, importer):
        report = importer.check(csv_lines(
            line(),
            line(member_number="10000002", last_name='"Mar\ntin"', role="x"),
        ))

        # A name holds no line break.
        assert errors(report) == [(3, "last_name"), (3, "role")]

    def test_the_report_keeps_the_first_errors_and_counts_them_all(self, importer, monkeypatch):
        monkeypatch.setattr(importer_module, "MAX_KEPT_ERRORS", 5)

        report = importer.check(csv_lines(*(line(member_number=str(n)) for n in range(12))))

        assert report.error_count == 12
        assert len(report.errors) == 5

    def test_progress_counts_the_lines(self, importer, tmp_path):
        path = tmp_path / "members.csv"
        path.write_text("".join(csv_lines(line(), "", line(member_number="10000002"))))
        steps: list[int] = []

        importer.check(read_lines(path), progress=steps.append)

        assert sum(steps) == count_lines(path) == 3


class TestApply:
    def test_adds_then_leaves_identical_records_untouched(self, importer, db):
        rows = csv_lines(*(line(member_number=f"1000000{n}") for n in range(1, 8)))

        first = importer.apply(rows)
        stored = members(db)
        stamps = {number: member.updated_at for number, member in stored.items()}
        second = importer.apply(rows)

        assert (first.added, first.updated, first.unchanged) == (7, 0, 0)
        assert (second.added, second.updated, second.unchanged) == (0, 0, 7)
        assert second.summary() == "0 added, 0 updated, 7 unchanged"
        assert {number: m.updated_at for number, m in members(db).items()} == stamps

    def test_values_are_stored_normalized(self, importer, db):
        nir = nir_with_key("2690549588157")
        spaced = f"{nir[0]} {nir[1:3]} {nir[3:5]} {nir[5:7]} {nir[7:10]} {nir[10:13]} {nir[13:]}"

        importer.apply(csv_lines(line(
            nir=spaced, email=" Jeanne.Martin@Example.ORG ", mobile="06 12 34 56 78",
            birth_date="14/03/1958", role="Principal", kind="HEALTH", status="Active",
            last_name="  Martin ",
        )))

        member = members(db)["10000001"]
        assert member.tenant == "miel"
        assert member.nir == nir
        assert member.email == "jeanne.martin@example.org"
        assert member.mobile == "+33612345678"
        assert member.birth_date == date(1958, 3, 14)
        assert (member.role, member.kind, member.status) == ("principal", "health", "active")
        assert member.last_name == "Martin"

    def test_a_changed_line_updates_only_that_member(self, importer, db):
        rows = [line(member_number=f"1000000{n}") for n in range(1, 6)]
        importer.apply(csv_lines(*rows))
        before = {number: member.updated_at for number, member in members(db).items()}
        rows[3] = line(member_number="10000004", status="terminated", email="new@example.org")

        report = importer.apply(csv_lines(*rows))

        after = members(db)
        assert (report.added, report.updated, report.unchanged) == (0, 1, 4)
        assert after["10000004"].status == "terminated"
        assert after["10000004"].email == "new@example.org"
        assert after["10000004"].updated_at >= before["10000004"]
        for number in ("10000001", "10000002", "10000003", "10000005"):
            assert after[number].updated_at == before[number]
            assert after[number].status == "active"

    def test_a_file_mixing_new_changed_and_identical_members(self, importer, db):
        importer.apply(csv_lines(line(member_number="10000001"), line(member_number="10000002")))

        report = importer.apply(csv_lines(
            line(member_number="10000001"),
            line(member_number="10000002", first_name="Jeannette"),
            line(member_number="10000003"),
        ))

        assert (report.added, report.updated, report.unchanged) == (1, 1, 1)
        assert members(db)["10000002"].first_name == "Jeannette"
        assert set(members(db)) == {"10000001", "10000002", "10000003"}

    def test_members_absent_from_the_file_and_other_tenants_are_kept(self, importer, db, app):
        other = MemberImporter(db, app.extensions["idp"].tenants["malakoff"], today=TODAY)
        other.apply(csv_lines(line(member_number="10000001", first_name="Autre")))
        importer.apply(csv_lines(line(member_number="10000001"), line(member_number="10000002")))

        importer.apply(csv_lines(line(member_number="10000002")))

        assert set(members(db)) == {"10000001", "10000002"}
        assert members(db, "malakoff")["10000001"].first_name == "Autre"
        assert members(db)["10000001"].first_name == "Jeanne"

    def test_records_an_audit_event_with_the_counts(self, importer, db):
        importer.apply(csv_lines(line(), line(member_number="10000002")), source="extract.csv")

        event = db.scalar(select(AuditEvent).where(AuditEvent.tag == events.MEMBERS_IMPORTED))
        assert event.tenant == "miel"
        assert event.data == {
            "source": "extract.csv", "rows": 2, "added": 2, "updated": 0, "unchanged": 0,
        }

    def test_a_failure_in_a_later_batch_writes_nothing(self, importer, db, monkeypatch):
        rows = csv_lines(*(line(member_number=f"1000000{n}") for n in range(1, 8)))
        calls = []
        upsert = MemberImporter._upsert

        def failing(self, batch, report):
            calls.append(len(batch))
            if len(calls) == 2:
                raise RuntimeError("database went away")
            upsert(self, batch, report)

        monkeypatch.setattr(MemberImporter, "_upsert", failing)

        with pytest.raises(RuntimeError):
            importer.apply(rows)

        assert calls == [3, 3]
        assert members(db) == {}
        assert db.scalar(select(func.count()).select_from(AuditEvent)) == 0

    def test_a_line_that_became_invalid_aborts_everything(self, importer, db):
        rows = csv_lines(*(line(member_number=f"1000000{n}") for n in range(1, 6)), line(role="x"))

        with pytest.raises(ImportAborted, match="line 7"):
            importer.apply(rows)

        assert members(db) == {}


def test_import_members_checks_before_writing(app, db, tenant, tmp_path):
    path = tmp_path / "members.csv"
    path.write_text("".join(csv_lines(line(), line(member_number="10000002", kind="?"))))

    report = import_members(db, tenant, path, today=TODAY)

    assert errors(report) == [(3, "kind")]
    assert members(db) == {}

    path.write_text("".join(csv_lines(line(), line(member_number="10000002"))))

    report = import_members(db, tenant, path, today=TODAY)

    assert report.summary() == "2 added, 0 updated, 0 unchanged"
    assert set(members(db)) == {"10000001", "10000002"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"", 0), (b"header\n", 0), (b"header\na\nb\n", 2), (b"header\na\nb", 2)],
)
def test_count_lines(tmp_path, content, expected):
    path = tmp_path / "file.csv"
    path.write_bytes(content)

    assert count_lines(path) == expected


HOSTILE_FILES = {
    "CR only": (lambda: f"{HEADER}\r{line()}\r".encode(), "end with CR alone"),
    "CR only, longer than a line": (
        lambda: f"{HEADER}\r".encode() + f"{line()}\r".encode() * 2_000, "end with CR alone"),
    "huge header": (lambda: b"member_number;" * 10_000 + b"\n" + line().encode() + b"\n",
                    "line 1 is longer than 65536 bytes"),
    "endless binary line": (lambda: bytes(range(14, 256)) * 1_000, "line 1 is longer than"),
    "binary": (lambda: bytes(range(256)) * 64, "line 1 holds a NUL byte"),
    "NUL in a cell": (lambda: "".join(f"{text}\n" for text in (
        HEADER, line(member_number="10000001"), line(member_number="10000002", last_name="Mar\0tin"),
        line(member_number="10000003"))).encode(), "line 3 holds a NUL byte"),
}


@pytest.mark.parametrize("content", HOSTILE_FILES.values(), ids=HOSTILE_FILES)
def test_a_file_that_is_not_text_lines_is_refused_whole_by_the_importer(db, tenant, tmp_path,
                                                                        content):
    """Whoever calls the importer: it says why in one sentence, and imports nothing."""
    make, reason = content
    path = tmp_path / "members.csv"
    path.write_bytes(make())

    with pytest.raises(NotMemberText, match=reason):
        import_members(db, tenant, path, today=TODAY)
    # The second pass refuses it too (a file changed after its check).
    with pytest.raises(NotMemberText, match=reason):
        MemberImporter(db, tenant, today=TODAY).apply(read_lines(path))
    assert members(db) == {}


# -- postal addresses ------------------------------------------------------------------

ADDRESS = {"address_line1": "12 rue des Lilas", "address_line2": "Bâtiment B",
           "postcode": "69003", "city": "Lyon"}
REQUIRED_HEADER = ";".join(name for name in COLUMNS if name not in importer_module.ADDRESS_COLUMNS)


class TestPostalAddresses:
    def test_an_address_is_stored_and_printed_for_the_envelope(self, importer, db):
        report = importer.apply(csv_lines(
            line(member_number="10000001", **ADDRESS),
            line(member_number="10000002", address_line1="Avenue Louise 54", postcode="1000",
                 city="Bruxelles", country="be"),
            line(member_number="10000003"),
        ))

        assert report.added == 3
        stored = members(db)
        jeanne = stored["10000001"]
        assert (jeanne.address_line1, jeanne.address_line2, jeanne.address_line3, jeanne.postcode,
                jeanne.city, jeanne.country) == ("12 rue des Lilas", "Bâtiment B", None, "69003",
                                                 "Lyon", "FR")
        assert jeanne.postal_address.lines() == [
            "Jeanne Martin", "12 rue des Lilas", "Bâtiment B", "69003 LYON"]
        assert stored["10000002"].postal_address.lines() == [
            "Jeanne Martin", "Avenue Louise 54", "1000 BRUXELLES", "BELGIQUE"]
        assert stored["10000003"].postal_address is None
        assert stored["10000003"].country == "FR"

    @pytest.mark.parametrize(
        ("fields", "field", "reason"),
        [
            ({"postcode": "6900"}, "postcode", "must be 5 digits in France"),
            ({"postcode": "69 003"}, "postcode", "must be 5 digits in France"),
            ({"postcode": "2A004"}, "postcode", "must be 5 digits in France"),
            ({"postcode": "SW1A 1AA!", "country": "GB"}, "postcode", "letters, digits"),
            ({"country": "FRA"}, "country", "ISO 3166-1 alpha-2"),
            ({"country": "ZZ"}, "country", "not an ISO 3166-1 alpha-2 country code"),
            ({"address_line1": "x" * 39}, "address_line1", "longer than 38 characters"),
            ({"address_line3": "12 rue\tdes Lilas"}, "address_line3", "control"),
            ({"city": "Lyon\u200b"}, "city", "control or invisible"),
            ({"address_line2": "Porte\u00adB"}, "address_line2", "control or invisible"),
            ({"city": "Saint-Rémy-en-Bouzemont-Saint-Genest"}, "city", "with the postcode"),
            ({"postcode": ""}, "address", "incomplete: postcode missing"),
            ({"address_line1": "", "address_line2": ""}, "address",
             "incomplete: address_line1 missing"),
        ],
    )
    def test_address_rules(self, importer, db, fields, field, reason):
        report = importer.check(csv_lines(line(), line(member_number="10000002",
                                                       **{**ADDRESS, **fields})))

        assert len(report.errors) == 1, report.errors
        (error,) = report.errors
        assert (error.line, error.field) == (3, field)
        assert reason in error.reason
        assert str(error).startswith(f"line 3: {field}: ")
        assert "\n" not in str(error)

    def test_a_bad_address_imports_nothing(self, app, db, tenant, tmp_path):
        path = tmp_path / "members.csv"
        path.write_text("".join(csv_lines(
            line(member_number="10000001", **ADDRESS),
            line(member_number="10000002", **{**ADDRESS, "postcode": "123"}),
        )), encoding="utf-8")

        report = import_members(db, tenant, path, today=TODAY)

        assert [str(error) for error in report.errors] == [
            "line 3: postcode: must be 5 digits in France"]
        assert members(db) == {}

    def test_a_file_without_the_address_columns_keeps_the_stored_addresses(self, importer, db,
                                                                          tenant):
        importer.apply(csv_lines(line(member_number="10000001", **ADDRESS)))
        without = [name for name in COLUMNS if name not in importer_module.ADDRESS_COLUMNS]

        report = MemberImporter(db, tenant, today=TODAY).apply(csv_lines(
            ";".join(line(member_number="10000001", first_name="Jeanne-Marie").split(";")[:len(without)]),
            ";".join(line(member_number="10000002").split(";")[:len(without)]),
            header=REQUIRED_HEADER,
        ))

        assert (report.updated, report.added) == (1, 1)
        stored = members(db)
        assert (stored["10000002"].postal_address, stored["10000002"].country) == (None, "FR")
        jeanne = stored["10000001"]
        assert jeanne.first_name == "Jeanne-Marie"
        assert jeanne.postal_address.lines()[1:] == ["12 rue des Lilas", "Bâtiment B", "69003 LYON"]

    def test_an_empty_address_erases_the_stored_one(self, importer, db):
        importer.apply(csv_lines(line(member_number="10000001", **ADDRESS)))

        report = importer.apply(csv_lines(line(member_number="10000001")))

        assert report.updated == 1
        assert members(db)["10000001"].postal_address is None

    def test_an_address_column_needs_the_others(self, importer):
        report = importer.check(csv_lines(line(), header=REQUIRED_HEADER + ";postcode"))

        assert [str(error) for error in report.errors] == [
            "line 1: header: missing column(s): address_line1, city"]
