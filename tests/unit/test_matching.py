"""Identity matching against the member registry (SPEC §2, §3.3)."""

from __future__ import annotations

from datetime import date

import pytest

from idp.registry.matching import (
    BENEFICIARY,
    MATCH,
    MISS,
    NEAR_MISS,
    TERMINATED,
    MatchResult,
    contact_matches,
    match_by_member_number,
    match_by_nir,
    normalize_name,
    osa_distance,
)
from idp.registry.models import Member
from idp.registry.nir import compute_key

BIRTH = date(1949, 11, 23)
NUMBER = "23456789"
# A woman born in August 1962 in Ajaccio (2A), with a valid key.
NIR = "262082A004021" + compute_key("262082A004021")


@pytest.fixture
def malakoff(app):
    return app.extensions["idp"].tenants["malakoff"]


@pytest.fixture
def miel(app):
    return app.extensions["idp"].tenants["miel"]


@pytest.fixture
def add(db):
    """Insert a member record; the defaults are Jean-Pierre DUPONT-MOREL of Malakoff."""

    def add(**fields) -> Member:
        values = {
            "tenant": "malakoff", "member_number": NUMBER, "nir": None,
            "last_name": "DUPONT-MOREL", "first_name": "Jean-Pierre", "birth_date": BIRTH,
            "role": "principal", "kind": "health", "email": None, "mobile": None,
            "status": "active",
        } | fields
        member = Member(**values)
        db.add(member)
        db.flush()
        return member

    return add


@pytest.fixture
def by_number(db, malakoff):
    def by_number(first_name, last_name, birth_date=BIRTH, member_number=NUMBER) -> MatchResult:
        return match_by_member_number(db, malakoff, member_number, first_name, last_name, birth_date)

    return by_number


def assert_miss(result: MatchResult) -> None:
    # A miss carries nothing that could tell which field was wrong, or that a record exists.
    assert result == MatchResult(MISS, None, [])


class TestNormalizeName:
    @pytest.mark.parametrize(
        ("raw", "normalized"),
        [
            ("Jean-Pierre", "jean pierre"),
            ("jean pierre", "jean pierre"),
            ("JEAN PIERRE", "jean pierre"),
            ("  Jean --  Pierre ", "jean pierre"),
            ("Étienne", "etienne"),
            ("ETIENNE", "etienne"),
            ("LEFÈVRE", "lefevre"),
            ("Françoise", "francoise"),
            ("D'Artagnan", "d artagnan"),
            ("d’Artagnan", "d artagnan"),
            ("N'DIAYE", "n diaye"),
            ("St. Jean", "st jean"),
            ("Œuvrard", "oeuvrard"),
            ("Lætitia", "laetitia"),
            ("Strauß", "strauss"),
            ("Søren", "soren"),
            ("Jean\u00a0Pierre", "jean pierre"),  # non-breaking space
            ("", ""),
            (" - ' ", ""),
        ],
    )
    def test_forms(self, raw, normalized):
        assert normalize_name(raw) == normalized

    def test_spellings_of_one_name_are_equal(self):
        assert len({normalize_name(v) for v in ("Jean-Pierre", "jean pierre", "JEAN PIERRE")}) == 1
        assert normalize_name("Étienne") == normalize_name("ETIENNE")
        assert normalize_name("D'Artagnan") == normalize_name("d artagnan")


class TestDistance:
    @pytest.mark.parametrize(
        ("a", "b", "distance"),
        [
            ("martin", "martin", 0),
            ("martin", "martine", 1),  # insertion
            ("martin", "marin", 1),  # deletion
            ("martin", "mertin", 1),  # substitution
            ("dupont", "dupotn", 1),  # adjacent transposition counts once
            ("kitten", "sitting", 3),
            ("", "abc", 3),
            ("ca", "abc", 3),  # optimal string alignment: each substring edited once
        ],
    )
    def test_osa_distance(self, a, b, distance):
        assert osa_distance(a, b) == distance == osa_distance(b, a)


class TestExactMatch:
    @pytest.mark.parametrize(
        ("first_name", "last_name"),
        [
            ("Jean-Pierre", "DUPONT-MOREL"),
            ("jean-pierre", "dupont-morel"),
            ("JEAN PIERRE", "Dupont Morel"),
            ("Jean  Pierre ", " dupont morel"),
            ("JeanPierre", "DUPONTMOREL"),  # separators left out
            ("Jéan-Piérre", "DÛPONT-MOREL"),  # accents typed where there are none
        ],
    )
    def test_case_accents_and_separators_do_not_matter(self, add, by_number, first_name, last_name):
        member = add()

        assert by_number(first_name, last_name) == MatchResult(MATCH, member, [])

    @pytest.mark.parametrize(
        ("on_file", "typed"),
        [
            (("Étienne", "LEFÈVRE"), ("ETIENNE", "Lefevre")),
            (("Françoise", "N'DIAYE"), ("francoise", "N’Diaye")),
            (("Françoise", "N'DIAYE"), ("Francoise", "NDIAYE")),
            (("Charles", "D'ARTAGNAN"), ("Charles", "d artagnan")),
            (("Anne-Sophie", "LE GOFF"), ("anne sophie", "LE-GOFF")),
            (("Noëlle", "SAINT-ÉLOI"), ("NOELLE", "Saint Eloi")),
            (("Lætitia", "ŒUVRARD"), ("Laetitia", "Oeuvrard")),
        ],
    )
    def test_french_names(self, add, by_number, on_file, typed):
        member = add(first_name=on_file[0], last_name=on_file[1])

        assert by_number(*typed).outcome == MATCH
        assert by_number(*typed).member is member


class TestNearMiss:
    def test_one_typo_in_the_last_name(self, add, by_number):
        member = add()

        assert by_number("Jean-Pierre", "DUPONT-MORELL") == MatchResult(NEAR_MISS, member, ["last_name"])

    def test_one_typo_in_the_first_name(self, add, by_number):
        member = add()

        assert by_number("Jean-Piere", "DUPONT-MOREL") == MatchResult(NEAR_MISS, member, ["first_name"])

    def test_a_transposition_is_one_typo(self, add, by_number):
        add(first_name="Lucie")

        assert by_number("Lucei", "DUPONT-MOREL").differences == ["first_name"]

    def test_two_typos_in_a_long_name(self, add, by_number):
        member = add(last_name="THÉVENOT")

        # "thevenot" → "tevenod": h dropped, t → d; 7 letters allow two edits.
        assert by_number("Jean-Pierre", "Tévenod") == MatchResult(NEAR_MISS, member, ["last_name"])
        assert_miss(by_number("Jean-Pierre", "Tevenaud"))  # four edits

    def test_one_typo_in_a_short_name(self, add, by_number):
        add(first_name="Lucie")

        assert by_number("Lucia", "DUPONT-MOREL").outcome == NEAR_MISS

    def test_two_typos_in_a_short_name_are_a_miss(self, add, by_number):
        add(first_name="Lucie")

        assert_miss(by_number("Lucas", "DUPONT-MOREL"))  # "ie" → "as": 2 edits on 5 letters
        assert_miss(by_number("Lucy", "DUPONT-MOREL"))  # i → y, e dropped

    def test_the_shorter_length_sets_the_tolerance(self, add, by_number):
        add(first_name="Marcel")

        # Two letters dropped from a 6-letter name leave 4: another name, not a typo.
        assert_miss(by_number("Marc", "DUPONT-MOREL"))
        assert by_number("Marcl", "DUPONT-MOREL").outcome == NEAR_MISS

    def test_only_the_first_word_of_a_composed_first_name(self, add, by_number):
        member = add()

        assert by_number("Jean", "DUPONT-MOREL") == MatchResult(NEAR_MISS, member, ["first_name"])
        assert by_number("Pierre", "Dupont Morel").outcome == NEAR_MISS

    def test_only_part_of_a_composed_last_name(self, add, by_number):
        member = add()

        assert by_number("Jean-Pierre", "DUPONT") == MatchResult(NEAR_MISS, member, ["last_name"])
        assert by_number("Jean-Pierre", "Morel").outcome == NEAR_MISS

    def test_more_words_typed_than_on_file(self, add, by_number):
        add(first_name="Marie")

        assert by_number("Marie-Claire", "DUPONT-MOREL").differences == ["first_name"]

    def test_a_one_letter_part_is_not_a_part(self, add, by_number):
        add(last_name="D'ARTAGNAN")

        assert_miss(by_number("Jean-Pierre", "D"))
        assert by_number("Jean-Pierre", "Artagnan").outcome == NEAR_MISS

    def test_swapped_names_are_for_review(self, add, by_number):
        member = add()

        assert by_number("DUPONT-MOREL", "Jean-Pierre") == MatchResult(
            NEAR_MISS, member, ["first_name", "last_name"]
        )

    def test_both_names_differing_is_a_miss(self, add, by_number):
        add()

        assert_miss(by_number("Jean-Piere", "DUPONT-MORELL"))  # one typo in each
        assert_miss(by_number("Jean", "DUPONT"))  # part of each
        assert_miss(by_number("DUPONT-MORELL", "Jean-Pierre"))  # swapped with a typo

    @pytest.mark.parametrize(
        ("first_name", "last_name"),
        [("Paul", "DUPONT-MOREL"), ("Jean-Pierre", "DURAND"), ("", "DUPONT-MOREL"), ("Jean-Pierre", " - ")],
    )
    def test_another_name_is_a_miss(self, add, by_number, first_name, last_name):
        add()

        assert_miss(by_number(first_name, last_name))


class TestMiss:
    def test_unknown_member_number(self, add, by_number):
        add()

        assert_miss(by_number("Jean-Pierre", "DUPONT-MOREL", member_number="99999999"))

    def test_empty_registry(self, by_number):
        assert_miss(by_number("Jean-Pierre", "DUPONT-MOREL"))

    @pytest.mark.parametrize("birth_date", [date(1949, 11, 24), date(1948, 11, 23), date(1949, 12, 23)])
    def test_another_birth_date_is_a_miss_even_with_exact_names(self, add, by_number, birth_date):
        add()

        assert_miss(by_number("Jean-Pierre", "DUPONT-MOREL", birth_date=birth_date))

    def test_another_birth_date_with_a_typo_is_a_miss(self, add, by_number):
        add()

        assert_miss(by_number("Jean-Piere", "DUPONT-MOREL", birth_date=date(1949, 11, 24)))

    def test_another_tenants_record_is_a_miss(self, add, db, miel, by_number):
        add(tenant="miel")

        assert_miss(by_number("Jean-Pierre", "DUPONT-MOREL"))
        assert match_by_member_number(db, miel, NUMBER, "Jean-Pierre", "DUPONT-MOREL", BIRTH).outcome == MATCH

    def test_spaces_around_the_member_number_are_ignored(self, add, by_number):
        add()

        assert by_number("Jean-Pierre", "DUPONT-MOREL", member_number=" 2345 6789 ").outcome == MATCH


class TestRoleAndStatus:
    def test_beneficiary(self, add, by_number):
        member = add(role="beneficiary", first_name="Lucie", birth_date=date(2012, 5, 6))

        result = by_number("Lucie", "Dupont-Morel", birth_date=date(2012, 5, 6))

        assert result == MatchResult(BENEFICIARY, member, [])

    def test_near_missed_beneficiary_keeps_its_differences(self, add, by_number):
        member = add(role="beneficiary")

        assert by_number("Jean-Piere", "DUPONT-MOREL") == MatchResult(BENEFICIARY, member, ["first_name"])

    def test_terminated(self, add, by_number):
        member = add(status="terminated")

        assert by_number("Jean-Pierre", "DUPONT-MOREL") == MatchResult(TERMINATED, member, [])

    def test_terminated_takes_precedence_over_beneficiary(self, add, by_number):
        add(status="terminated", role="beneficiary")

        assert by_number("Jean-Pierre", "DUPONT-MOREL").outcome == TERMINATED

    @pytest.mark.parametrize(("role", "status"), [("beneficiary", "active"), ("principal", "terminated")])
    def test_a_miss_never_reveals_the_record(self, add, by_number, role, status):
        add(role=role, status=status)

        assert_miss(by_number("Paul", "DURAND"))
        assert_miss(by_number("Jean-Pierre", "DUPONT-MOREL", birth_date=date(1950, 1, 1)))


class TestByNir:
    @pytest.fixture
    def francoise(self, add):
        return add(tenant="miel", member_number="76543210", nir=NIR, first_name="Françoise",
                   last_name="N'DIAYE", birth_date=date(1962, 8, 30))

    def by_nir(self, db, tenant, nir=NIR, first_name="Françoise", last_name="N'DIAYE",
               birth_date=date(1962, 8, 30)) -> MatchResult:
        return match_by_nir(db, tenant, nir, first_name, last_name, birth_date)

    def test_match(self, db, miel, francoise):
        assert self.by_nir(db, miel) == MatchResult(MATCH, francoise, [])

    @pytest.mark.parametrize(
        "typed",
        [
            f"{NIR[0]} {NIR[1:3]} {NIR[3:5]} {NIR[5:7]} {NIR[7:10]} {NIR[10:13]} {NIR[13:]}",
            f" {NIR[:5]}\u00a0{NIR[5:7].lower()}{NIR[7:]} ",
        ],
    )
    def test_spaces_and_case_in_the_nir_are_ignored(self, db, miel, francoise, typed):
        assert self.by_nir(db, miel, nir=typed).member is francoise

    def test_near_miss(self, db, miel, francoise):
        result = self.by_nir(db, miel, first_name="Francoise", last_name="NDIAY")

        assert result == MatchResult(NEAR_MISS, francoise, ["last_name"])

    def test_unknown_nir(self, db, miel, francoise):
        other = "162082A004021" + compute_key("162082A004021")

        assert_miss(self.by_nir(db, miel, nir=other))

    def test_wrong_birth_date(self, db, miel, francoise):
        assert_miss(self.by_nir(db, miel, birth_date=date(1962, 8, 31)))

    def test_another_tenant(self, db, malakoff, francoise):
        assert_miss(self.by_nir(db, malakoff))

    def test_a_record_without_nir_is_not_found_by_nir(self, db, miel, add):
        add(tenant="miel")

        assert_miss(self.by_nir(db, miel, first_name="Jean-Pierre", last_name="DUPONT-MOREL",
                                birth_date=BIRTH))

    def test_a_beneficiary_found_by_nir(self, db, miel, add):
        add(tenant="miel", nir=NIR, role="beneficiary", first_name="Françoise",
            last_name="N'DIAYE", birth_date=date(1962, 8, 30))

        assert self.by_nir(db, miel).outcome == BENEFICIARY


class TestSharedNir:
    """A beneficiary registered under the principal's NIR."""

    @pytest.fixture
    def family(self, add):
        mother = add(tenant="miel", member_number="76543210", nir=NIR, first_name="Françoise",
                     last_name="N'DIAYE", birth_date=date(1962, 8, 30))
        child = add(tenant="miel", member_number="76543211", nir=NIR, first_name="Awa",
                    last_name="N'DIAYE", birth_date=date(1990, 2, 11), role="beneficiary")
        return mother, child

    def test_the_principal_finds_her_record(self, db, miel, family):
        mother, _child = family

        result = match_by_nir(db, miel, NIR, "Françoise", "N'Diaye", date(1962, 8, 30))

        assert result == MatchResult(MATCH, mother, [])

    def test_the_child_finds_the_beneficiary_record(self, db, miel, family):
        _mother, child = family

        result = match_by_nir(db, miel, NIR, "Awa", "N'Diaye", date(1990, 2, 11))

        assert result == MatchResult(BENEFICIARY, child, [])

    def test_the_principal_wins_when_both_agree(self, db, miel, add):
        # Twins of the same names on one NIR cannot be told apart: the principal is preferred.
        principal = add(tenant="miel", member_number="76543219", nir=NIR, first_name="Françoise",
                        last_name="N'DIAYE", birth_date=date(1962, 8, 30))
        add(tenant="miel", member_number="76543210", nir=NIR, first_name="Françoise",
            last_name="N'DIAYE", birth_date=date(1962, 8, 30), role="beneficiary")

        assert match_by_nir(db, miel, NIR, "Françoise", "N'Diaye", date(1962, 8, 30)).member is principal

    def test_an_exact_match_beats_a_near_miss(self, db, miel, add):
        principal = add(tenant="miel", member_number="76543210", nir=NIR, first_name="Louise",
                        last_name="N'DIAYE", birth_date=date(1962, 8, 30))
        child = add(tenant="miel", member_number="76543211", nir=NIR, first_name="Louis",
                    last_name="N'DIAYE", birth_date=date(1962, 8, 30), role="beneficiary")

        assert match_by_nir(db, miel, NIR, "Louis", "N'Diaye", date(1962, 8, 30)).member is child
        assert match_by_nir(db, miel, NIR, "Louise", "N'Diaye", date(1962, 8, 30)).member is principal

    def test_the_active_record_wins(self, db, miel, add):
        add(tenant="miel", member_number="76543210", nir=NIR, first_name="Françoise",
            last_name="N'DIAYE", birth_date=date(1962, 8, 30), status="terminated")
        active = add(tenant="miel", member_number="76543211", nir=NIR, first_name="Françoise",
                     last_name="N'DIAYE", birth_date=date(1962, 8, 30))

        assert match_by_nir(db, miel, NIR, "Françoise", "N'Diaye", date(1962, 8, 30)) == MatchResult(
            MATCH, active, []
        )

    def test_nobody_agreeing_is_a_miss(self, db, miel, family):
        assert_miss(match_by_nir(db, miel, NIR, "Awa", "N'Diaye", date(1962, 8, 30)))


class TestContactMatches:
    def member(self, email=None, mobile=None) -> Member:
        return Member(email=email, mobile=mobile)

    def test_nothing_on_file_accepts_anything(self):
        assert contact_matches(self.member(), "anyone@example.org", "+33600000000")
        assert contact_matches(self.member(), None, None)

    @pytest.mark.parametrize("typed", ["jeanne.martin@example.org", " Jeanne.Martin@Example.ORG "])
    def test_email_on_file_trimmed_and_lowercased(self, typed):
        assert contact_matches(self.member(email="jeanne.martin@example.org"), typed, None)

    @pytest.mark.parametrize("typed", ["jeanne.martin@example.com", "", None])
    def test_another_or_no_email_when_one_is_on_file(self, typed):
        assert not contact_matches(self.member(email="jeanne.martin@example.org"), typed, None)

    @pytest.mark.parametrize("typed", ["+33612345688", "06 12 34 56 88", "+33 6 12 34 56 88"])
    def test_mobile_on_file_compared_in_e164(self, typed):
        assert contact_matches(self.member(mobile="+33612345688"), None, typed)

    @pytest.mark.parametrize("typed", ["+33612345689", "", None, "not a number"])
    def test_another_or_no_mobile_when_one_is_on_file(self, typed):
        assert not contact_matches(self.member(mobile="+33612345688"), None, typed)

    def test_both_on_file_must_both_agree(self):
        member = self.member(email="jeanne.martin@example.org", mobile="+33612345688")

        assert contact_matches(member, "jeanne.martin@example.org", "+33612345688")
        assert not contact_matches(member, "jeanne.martin@example.org", "+33612345689")
        assert not contact_matches(member, "other@example.org", "+33612345688")

    def test_only_the_one_on_file_is_checked(self):
        assert contact_matches(self.member(email="jeanne.martin@example.org"), "jeanne.martin@example.org",
                               "+33700000000")
        assert contact_matches(self.member(mobile="+33612345688"), "other@example.org", "+33612345688")
