"""`idp members import`: the registry import from the operator's side (SPEC §2, §11)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from idp import events
from idp.events import AuditEvent
from idp.registry.importer import COLUMNS, MemberImporter
from idp.registry.models import Member
from tests.conftest import DATABASE_URL

HEADER = ";".join(COLUMNS)


def nir_with_key(first13: str) -> str:
    return f"{first13}{97 - int(first13) % 97:02d}"


def row(number: str, sep: str = ";", **fields: str) -> str:
    values = {
        "member_number": number,
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
    } | fields
    return sep.join(values[name] for name in COLUMNS)


def write_csv(tmp_path, *rows: str, header: str = HEADER, name: str = "members.csv", bom=False):
    path = tmp_path / name
    text = "".join(f"{line}\n" for line in (header, *rows))
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
    return path


def import_(runner, path, tenant: str = "miel"):
    return runner.invoke(args=["members", "import", str(path), "--tenant", tenant])


def registry(db, tenant: str = "miel") -> dict[str, Member]:
    db.rollback()
    query = select(Member).where(Member.tenant == tenant)
    return {member.member_number: member for member in db.scalars(query)}


def audit(db) -> list[AuditEvent]:
    db.rollback()
    return list(db.scalars(select(AuditEvent).where(AuditEvent.tag == events.MEMBERS_IMPORTED)))


def assert_refused(result, message: str) -> None:
    assert result.exit_code != 0, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def three(tmp_path, **changes):
    nir = nir_with_key("2580349588157")
    rows = {
        "10000001": row("10000001", nir=nir, email="Jeanne@Example.org", mobile="06 12 34 56 78"),
        "10000002": row("10000002", first_name="Paul", role="beneficiary"),
        "10000003": row("10000003", first_name="Lucie", birth_date="02/05/1990", kind="provident"),
    } | changes
    return write_csv(tmp_path, *rows.values())


def test_help_documents_the_columns(runner):
    result = runner.invoke(args=["members", "import", "--help"])

    assert result.exit_code == 0, result.output
    assert "members import" in result.output
    for column in COLUMNS:
        assert column in result.output
    assert "nothing is imported" in result.output.lower()


def test_imports_a_file(runner, db, tmp_path):
    result = import_(runner, three(tmp_path))

    assert result.exit_code == 0, result.output
    assert "members.csv (miel): 3 members, 3 added, 0 updated, 0 unchanged" in result.stdout
    members = registry(db)
    assert set(members) == {"10000001", "10000002", "10000003"}
    assert members["10000001"].email == "jeanne@example.org"
    assert members["10000001"].mobile == "+33612345678"
    assert members["10000002"].role == "beneficiary"
    (event,) = audit(db)
    assert event.tenant == "miel"
    assert event.data["added"] == 3


def test_progress_goes_to_stderr(runner, tmp_path):
    result = import_(runner, three(tmp_path))

    assert "checking" in result.stderr
    assert "importing" in result.stderr
    assert "checking" not in result.stdout


def test_importing_the_same_file_again_changes_nothing(runner, db, tmp_path):
    path = three(tmp_path)
    import_(runner, path)
    before = {n: (m.id, m.updated_at) for n, m in registry(db).items()}

    result = import_(runner, path)

    assert result.exit_code == 0, result.output
    assert "0 added, 0 updated, 3 unchanged" in result.output
    assert {n: (m.id, m.updated_at) for n, m in registry(db).items()} == before


def test_a_changed_line_updates_only_that_member(runner, db, tmp_path):
    import_(runner, three(tmp_path))
    before = {n: m.updated_at for n, m in registry(db).items()}

    result = import_(runner, three(tmp_path, **{
        "10000002": row("10000002", first_name="Paul", role="beneficiary", status="terminated"),
    }))

    assert result.exit_code == 0, result.output
    assert "0 added, 1 updated, 2 unchanged" in result.output
    after = registry(db)
    assert after["10000002"].status == "terminated"
    assert after["10000001"].updated_at == before["10000001"]
    assert after["10000003"].updated_at == before["10000003"]


def test_comma_separated_with_a_bom(runner, db, tmp_path):
    path = write_csv(
        tmp_path,
        row("10000001", sep=","),
        row("10000002", sep=",", last_name='"Martin, née Roux"'),
        header=HEADER.replace(";", ","), bom=True,
    )

    result = import_(runner, path)

    assert result.exit_code == 0, result.output
    assert registry(db)["10000002"].last_name == "Martin, née Roux"


def test_bad_lines_are_all_reported_and_nothing_is_imported(runner, db, tmp_path, make):
    path = write_csv(
        tmp_path,
        row("10000001"),
        row("1000002", birth_date="2990-01-01"),
        row("10000003", nir="1234", mobile="01 23 45 67 89"),
        row("10000001", email="not-an-email"),
        row("10000005", role="spouse"),
        row("10000006", last_name="Dupont\x1b[31mRED"),
        row("10000007", first_name="B\u202e"),
    )

    result = import_(runner, path)

    assert_refused(result, "9 error(s) in members.csv; nothing was imported")
    assert result.exit_code == 1
    reported = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    assert [line.split(": ")[:2] for line in reported] == [
        ["line 3", "member_number"],
        ["line 3", "birth_date"],
        ["line 4", "nir"],
        ["line 4", "mobile"],
        ["line 5", "email"],
        ["line 5", "member_number"],
        ["line 6", "role"],
        ["line 7", "last_name"],
        ["line 8", "first_name"],
    ]
    for expected in (
        "line 3: member_number: must be exactly 8 digits",
        "line 3: birth_date: is in the future",
        "line 4: nir: invalid NIR (format)",
        "line 4: mobile: is not a mobile number",
        "line 5: email: is not a valid email address",
        "line 5: member_number: duplicate of line 2",
        "line 6: role: must be one of principal, beneficiary",
        "line 7: last_name: contains a control or invisible character",
        "line 8: first_name: contains a control or invisible character",
    ):
        assert expected in result.stderr
    assert registry(db) == {}
    assert audit(db) == []


def test_a_bad_line_blocks_an_update_of_the_others(runner, db, tmp_path):
    import_(runner, three(tmp_path))
    before = {n: m.updated_at for n, m in registry(db).items()}

    result = import_(runner, three(tmp_path, **{
        "10000002": row("10000002", status="terminated"),
        "10000003": row("10000003", kind="life"),
    }))

    assert_refused(result, "nothing was imported")
    assert {n: m.updated_at for n, m in registry(db).items()} == before
    assert registry(db)["10000002"].status == "active"


def test_at_most_50_errors_are_listed(runner, db, tmp_path):
    path = write_csv(tmp_path, *(row(str(n)) for n in range(70)))

    result = import_(runner, path)

    assert_refused(result, "70 error(s)")
    listed = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    assert len(listed) == 50
    assert listed[0].startswith("line 2:")
    assert "… and 20 more" in result.stderr


def test_a_bad_header_is_reported(runner, db, tmp_path):
    path = write_csv(tmp_path, row("10000001"), header=HEADER.replace("mobile", "phone"))

    result = import_(runner, path)

    assert_refused(result, "nothing was imported")
    assert "line 1: header: missing column(s): mobile" in result.stderr
    assert "line 1: header: unknown column(s): phone" in result.stderr


@pytest.mark.parametrize("rows", [(), ("", " ", ";;")], ids=["header only", "blank lines"])
def test_a_file_with_no_member_is_refused_and_changes_nothing(runner, db, tmp_path, rows):
    import_(runner, three(tmp_path))
    before = {n: m.updated_at for n, m in registry(db).items()}
    events_before = len(audit(db))

    result = import_(runner, write_csv(tmp_path, *rows, name="cut-short.csv"))

    assert_refused(result, "1 error(s) in cut-short.csv; nothing was imported")
    assert "line 1: header: no rows follow it: the file names no member" in result.stderr
    assert {n: m.updated_at for n, m in registry(db).items()} == before
    assert len(audit(db)) == events_before


def test_a_database_failure_leaves_nothing_half_written(runner, db, tmp_path, monkeypatch):
    upsert = MemberImporter._upsert
    written = []

    def write_then_fail(self, batch, report):
        upsert(self, batch, report)  # the rows are in the transaction…
        written.append(len(batch))
        raise OperationalError("INSERT …", {}, Exception("disk full"))  # …which then fails

    monkeypatch.setattr(MemberImporter, "_upsert", write_then_fail)

    result = import_(runner, three(tmp_path))

    assert_refused(result, "database error (OperationalError); nothing was imported")
    assert written == [3]
    assert registry(db) == {}
    assert audit(db) == []


@pytest.mark.skipif(not DATABASE_URL, reason="imports at once on PostgreSQL: set IDP_TEST_DATABASE_URL")
def test_an_import_while_another_is_under_way_is_refused_at_once(app, runner, db, tmp_path):
    # Both files add the same members: the second import would wait on the first's rows, then
    # fail on them. It is told at once instead, and the first goes through.
    path = three(tmp_path)
    halfway, release = threading.Event(), threading.Event()

    def slow_lines():
        lines = path.read_bytes().splitlines(keepends=True)
        yield from lines[:2]
        halfway.set()
        release.wait(timeout=30)
        yield from lines[2:]

    session = app.extensions["idp"].database.session()
    importer = MemberImporter(session, app.extensions["idp"].tenants.get("miel"))
    first = threading.Thread(target=importer.apply, args=(slow_lines(),))
    first.start()
    try:
        assert halfway.wait(timeout=30)
        threading.Timer(5, release.set).start()  # without the refusal, the second waits on the first
        result = import_(runner, path)
    finally:
        release.set()
        first.join(timeout=30)
        session.close()

    assert_refused(result, "another import of miel's members is under way; run this one again "
                           "once it has finished; nothing was imported")
    assert set(registry(db)) == {"10000001", "10000002", "10000003"}
    assert len(audit(db)) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "acme"], "unknown tenant 'acme'"),
        ([], "Missing option '--tenant'"),
    ],
)
def test_bad_options(runner, db, tmp_path, args, message):
    result = runner.invoke(args=["members", "import", str(three(tmp_path)), *args])

    assert_refused(result, message)
    assert registry(db) == {}


def test_a_missing_file(runner, tmp_path):
    result = import_(runner, tmp_path / "nope.csv")

    assert_refused(result, "does not exist")


def test_a_twenty_thousand_line_file(runner, db, tmp_path):
    lines = []
    for n in range(20_000):
        extra = {}
        if n % 10 == 0:
            extra["mobile"] = f"06{12000000 + n:08d}"
            extra["email"] = f"member{n}@example.org"
        if n % 7 == 0:
            extra["nir"] = nir_with_key(f"2{50 + n % 40:02d}0{n % 9 + 1}75{n % 999 + 1:03d}001")
        lines.append(row(f"{20_000_000 + n}", last_name=f"Nom{n}", **extra))
    path = write_csv(tmp_path, *lines)
    started = time.monotonic()

    result = import_(runner, path)

    assert result.exit_code == 0, result.output
    assert "20000 members, 20000 added, 0 updated, 0 unchanged" in result.output
    assert time.monotonic() - started < 60
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Member)) == 20_000
    assert audit(db)[0].data["rows"] == 20_000


def test_postal_addresses_are_imported_and_a_bad_one_changes_nothing(runner, db, tmp_path):
    address = {"address_line1": "Lieu-dit Capo di Feno", "address_line2": "Route des Sanguinaires",
               "postcode": "20000", "city": "Ajaccio"}
    assert import_(runner, write_csv(tmp_path, row("10000001", **address))).exit_code == 0
    before = registry(db)["10000001"].updated_at

    result = import_(runner, write_csv(
        tmp_path, row("10000001", **{**address, "city": "Bastia"}),
        row("10000002", **{**address, "postcode": "2A000"}),
        row("10000003", **{**address, "address_line2": "Route\x07des Sanguinaires"}),
        row("10000004", **{**address, "country": "XX"})))

    assert_refused(result, "3 error(s) in members.csv; nothing was imported")
    for expected in ("line 3: postcode: must be 5 digits in France",
                     "line 4: address_line2: contains a control or invisible character",
                     "line 5: country: 'XX' is not an ISO 3166-1 alpha-2 country code"):
        assert expected in result.stderr.splitlines()
    stored = registry(db)
    assert set(stored) == {"10000001"}
    assert stored["10000001"].updated_at == before
    assert stored["10000001"].postal_address.lines() == [
        "Jeanne Martin", "Lieu-dit Capo di Feno", "Route des Sanguinaires", "20000 AJACCIO"]
