"""The demo's member registry files (config/demo/members-*.csv): importable, valid, as the demo expects."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from idp.registry.importer import COLUMNS, import_members
from idp.registry.matching import (
    BENEFICIARY,
    MATCH,
    TERMINATED,
    contact_matches,
    match_by_member_number,
    match_by_nir,
)
from idp.registry.models import Member
from idp.registry.nir import nir_matches_birth_date, nir_matches_department, validate_nir

DEMO = Path(__file__).resolve().parents[2] / "config" / "demo"
TENANTS = ("malakoff", "miel")


def demo_file(tenant: str) -> Path:
    return DEMO / f"members-{tenant}.csv"


def rows(tenant: str) -> list[dict[str, str]]:
    with demo_file(tenant).open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file, delimiter=";"))


@pytest.mark.parametrize("tenant", TENANTS)
def test_the_file_imports_without_a_rejected_line(app, db, tenant):
    report = import_members(db, app.extensions["idp"].tenants[tenant], demo_file(tenant))

    assert report.ok, [str(error) for error in report.errors]
    assert report.error_count == 0
    assert report.added == report.rows == len(rows(tenant)) >= 15
    stored = db.scalars(select(Member).where(Member.tenant == tenant)).all()
    assert len(stored) == report.rows


@pytest.mark.parametrize("tenant", TENANTS)
def test_the_file_has_the_importers_columns(tenant):
    with demo_file(tenant).open(encoding="utf-8") as file:
        assert file.readline().rstrip("\n").split(";") == list(COLUMNS)


@pytest.mark.parametrize("tenant", TENANTS)
def test_every_nir_is_valid_and_agrees_with_the_birth_date(tenant):
    with_nir = [row for row in rows(tenant) if row["nir"]]

    assert with_nir
    for row in with_nir:
        nir = validate_nir(row["nir"])  # raises on a bad key
        assert nir.value == row["nir"], row["member_number"]
        assert nir.sex in "12", row["member_number"]
        assert nir.month_known, row["member_number"]
        assert nir_matches_birth_date(nir, date.fromisoformat(row["birth_date"])), row["member_number"]


def test_every_miel_member_has_a_nir():
    # Miel members register by NIR (SPEC §3.2).
    assert all(row["nir"] for row in rows("miel"))


@pytest.mark.parametrize("tenant", TENANTS)
def test_nirs_and_member_numbers_are_unique(tenant):
    numbers = [row["member_number"] for row in rows(tenant)]
    nirs = [row["nir"] for row in rows(tenant) if row["nir"]]

    assert len(set(numbers)) == len(numbers)
    assert len(set(nirs)) == len(nirs)


@pytest.mark.parametrize("tenant", TENANTS)
def test_the_file_shows_every_case(tenant):
    lines = rows(tenant)

    assert {row["role"] for row in lines} == {"principal", "beneficiary"}
    assert {row["status"] for row in lines} == {"active", "terminated"}
    assert any(row["email"] for row in lines)
    assert any(row["mobile"] for row in lines)
    assert any(not row["email"] and not row["mobile"] for row in lines)
    # No email and no mobile: the activation code goes by post, or (no address) to review.
    assert any(not row["email"] and not row["mobile"] and row["postcode"] for row in lines)
    assert any(not row["email"] and not row["mobile"] and not row["postcode"] for row in lines)


# Registry members with no email and no mobile but a postal address (README, "The demo").
BY_POST = {
    "malakoff": ("77889900", ["François-Xavier MÜLLER", "5 place du Marché", "67000 STRASBOURG"]),
    "miel": ("21098765", ["Éric BOUCHARD", "BP 45", "12 rue des Écoles", "06200 NICE"]),
}


@pytest.mark.parametrize("tenant", TENANTS)
def test_a_member_without_contacts_has_a_postal_address(app, db, tenant):
    assert import_members(db, app.extensions["idp"].tenants[tenant], demo_file(tenant)).ok
    number, lines = BY_POST[tenant]

    member = db.scalars(select(Member).where(Member.tenant == tenant,
                                             Member.member_number == number)).one()

    assert (member.email, member.mobile) == (None, None)
    assert member.postal_address.lines() == lines


# The members the demo and its tests rely on (SPEC §3; idp/demo/setup.py).
EXPECTED = {
    "malakoff": {
        "12345678": ("MARTIN", "Jeanne", "1956-04-02", "principal", "active",
                     "jeanne.martin@example.org", "+33612345688"),
        "23456789": ("DUPONT-MOREL", "Jean-Pierre", "1949-11-23", "principal", "active", "",
                     "+33612345678"),
        "34567890": ("DUPONT-MOREL", "Lucie", "2012-05-06", "beneficiary", "active", "", ""),
        "45678901": ("THÉVENOT", "Marcel", "1940-01-15", "principal", "terminated", "", ""),
    },
    "miel": {
        "87654321": ("LEFÈVRE", "Étienne", "1956-04-02", "principal", "active",
                     "etienne.lefevre@example.org", "+33612345688"),
        "76543210": ("N'DIAYE", "Françoise", "1962-08-30", "principal", "active", "",
                     "+33781223344"),
    },
}


@pytest.mark.parametrize("tenant", TENANTS)
def test_the_members_the_demo_relies_on(tenant):
    by_number = {row["member_number"]: row for row in rows(tenant)}

    for number, expected in EXPECTED[tenant].items():
        row = by_number[number]
        fields = ("last_name", "first_name", "birth_date", "role", "status", "email", "mobile")
        assert tuple(row[name] for name in fields) == expected, number


def test_francoise_ndiaye_is_a_woman_born_in_corse_du_sud():
    row = next(row for row in rows("miel") if row["member_number"] == "76543210")
    nir = validate_nir(row["nir"])

    assert nir.sex == "2"
    assert nir.department == "2A"
    assert nir_matches_department(nir, "2A")


def test_the_demo_members_match_through_the_registry(app, db):
    tenants = app.extensions["idp"].tenants
    for tenant in TENANTS:
        assert import_members(db, tenants[tenant], demo_file(tenant)).ok
    malakoff, miel = tenants["malakoff"], tenants["miel"]
    francoise_nir = next(row["nir"] for row in rows("miel") if row["member_number"] == "76543210")

    jean_pierre = match_by_member_number(db, malakoff, "23456789", "Jean-Pierre", "Dupont-Morel",
                                         date(1949, 11, 23))
    francoise = match_by_nir(db, miel, francoise_nir, "Françoise", "N'Diaye", date(1962, 8, 30))

    assert jean_pierre.outcome == MATCH
    # Only a mobile on file: any email, and that mobile (proven by its SMS code).
    assert contact_matches(jean_pierre.member, "jp.dupont-morel@example.org", "+33612345678")
    assert not contact_matches(jean_pierre.member, "jp.dupont-morel@example.org", "+33612345699")
    assert francoise.outcome == MATCH
    assert contact_matches(francoise.member, "francoise.ndiaye@example.org", "+33781223344")
    assert match_by_member_number(db, malakoff, "34567890", "Lucie", "DUPONT-MOREL",
                                  date(2012, 5, 6)).outcome == BENEFICIARY
    assert match_by_member_number(db, malakoff, "45678901", "Marcel", "Thevenot",
                                  date(1940, 1, 15)).outcome == TERMINATED
    jeanne = match_by_member_number(db, malakoff, "12345678", "Jeanne", "Martin", date(1956, 4, 2))
    assert not contact_matches(jeanne.member, "someone.else@example.org", "+33612345688")
