"""NIR structure, key and birth checks (SPEC §10, §3.2)."""

from __future__ import annotations

from datetime import date

import pytest

from idp.registry.nir import (
    InvalidNir,
    Nir,
    is_valid_nir,
    nir_matches_birth,
    nir_matches_birth_date,
    nir_matches_department,
    normalize_nir,
    redact_nir,
    validate_nir,
)


def with_key(first13: str) -> str:
    """Append the key, computed here the way INSEE documents it for Corsica.

    2A and 2B count as 20 minus 1 000 000 and 2 000 000 (the department sits at
    10^6 in the 13-digit number); the module reads them as 19 and 18 instead.
    """
    compact = first13.replace(" ", "")
    corsica = {"2A": 1_000_000, "2B": 2_000_000}.get(compact[5:7], 0)
    number = int(compact.replace("2A", "20").replace("2B", "20")) - corsica
    return f"{compact}{97 - number % 97:02d}"


def wrong_key(nir: str) -> str:
    return f"{nir[:13]}{int(nir[13:]) % 97 + 1:02d}"


def test_a_mainland_nir_is_split_into_its_parts():
    nir = with_key("1850575115423")

    parsed = validate_nir(nir)

    assert parsed == Nir(
        sex="1", year="85", month="05", department="75", commune="115", order="423",
        key=nir[13:],
    )
    assert parsed.value == nir == str(parsed)
    assert parsed.month_known
    assert not parsed.born_abroad


def test_spaces_and_case_are_ignored_on_input():
    nir = with_key("269092A004017")
    parts = (nir[0], nir[1:3], nir[3:5], nir[5:7].lower(), nir[7:10], nir[10:13], nir[13:])
    spaced = " " + " ".join(parts[:3]) + "\u00a0" + " ".join(parts[3:]) + "  "

    assert normalize_nir(spaced) == nir
    assert validate_nir(spaced).value == nir


@pytest.mark.parametrize("department", ["2A", "2B"])
def test_corsica(department):
    nir = with_key(f"17803{department}004017")

    parsed = validate_nir(nir)

    assert parsed.department == department
    assert parsed.commune == "004"
    # Keyed as if the department were 20, the number is refused: Corsica counts as 19 / 18.
    naive_key = with_key("1780320004017")[13:]
    with pytest.raises(InvalidNir) as caught:
        validate_nir(f"17803{department}004017{naive_key}")
    assert caught.value.reason == "key"


def test_corsica_before_1976_is_department_20():
    assert validate_nir(with_key("1650320004017")).department == "20"


@pytest.mark.parametrize(
    ("first13", "department", "commune"),
    [
        ("2900397611123", "976", "11"),  # Mayotte
        ("1881297412045", "974", "12"),  # La Réunion
        ("2750198805001", "988", "05"),  # Nouvelle-Calédonie
    ],
)
def test_overseas_departments_have_three_digits(first13, department, commune):
    parsed = validate_nir(with_key(first13))

    assert (parsed.department, parsed.commune) == (department, commune)
    assert parsed.order == first13[10:13]


def test_born_abroad_carries_the_country_code():
    parsed = validate_nir(with_key("1920699352012"))  # 352: Algeria

    assert parsed.department == "99"
    assert parsed.commune == "352"
    assert parsed.born_abroad


def test_historical_department_96():
    assert validate_nir(with_key("1450296001002")).department == "96"


@pytest.mark.parametrize("sex", ["1", "2", "3", "4", "7", "8"])
def test_accepted_sex_digits(sex):
    assert validate_nir(with_key(f"{sex}850575115423")).sex == sex


@pytest.mark.parametrize("sex", ["0", "5", "6", "9"])
def test_other_sex_digits_are_refused(sex):
    with pytest.raises(InvalidNir) as caught:
        validate_nir(with_key(f"{sex}850575115423"))

    assert caught.value.reason == "sex"


@pytest.mark.parametrize("month", ["01", "12", "20", "35", "42", "50", "99"])
def test_known_and_unknown_month_codes_are_accepted(month):
    parsed = validate_nir(with_key(f"185{month}75115423"))

    assert parsed.month == month
    assert parsed.month_known == (int(month) <= 12)


@pytest.mark.parametrize("month", ["00", "13", "19", "43", "49"])
def test_other_months_are_refused(month):
    with pytest.raises(InvalidNir) as caught:
        validate_nir(with_key(f"185{month}75115423"))

    assert caught.value.reason == "month"


def test_department_00_is_refused():
    with pytest.raises(InvalidNir) as caught:
        validate_nir(with_key("1850500115423"))

    assert caught.value.reason == "department"


def test_a_wrong_key_is_refused():
    nir = with_key("1850575115423")

    with pytest.raises(InvalidNir) as caught:
        validate_nir(wrong_key(nir))

    assert caught.value.reason == "key"
    assert "key" in str(caught.value)


@pytest.mark.parametrize("position", range(13))
def test_any_single_digit_typo_is_caught(position):
    nir = with_key("1850575115423")
    digit = nir[position]
    typo = nir[:position] + str((int(digit) + 1) % 10) + nir[position + 1:]

    assert not is_valid_nir(typo)


def test_swapped_adjacent_digits_are_caught():
    nir = with_key("1850575115423")
    swaps = [nir[:i] + nir[i + 1] + nir[i] + nir[i + 2:] for i in range(12) if nir[i] != nir[i + 1]]

    assert swaps
    assert not any(is_valid_nir(swapped) for swapped in swaps)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "18505751154",  # too short
        with_key("1850575115423") + "0",  # too long
        "1850575115423AB",  # letters in the key
        "18505X5115423" + "00",
        "185052C004017" + "00",  # only 2A and 2B
        "1A50575115423" + "00",
        "1-85-05-75-115-423-17",  # only spaces are separators
    ],
)
def test_malformed_values_are_refused_as_format(raw):
    with pytest.raises(InvalidNir) as caught:
        validate_nir(raw)

    assert caught.value.reason == "format"


def test_invalid_nir_is_a_value_error_with_a_reason():
    error = InvalidNir("month")

    assert isinstance(error, ValueError)
    assert error.reason == "month"


class TestBirthChecks:
    def test_year_and_month_must_agree_with_the_birth_date(self):
        nir = validate_nir(with_key("1850575115423"))

        assert nir_matches_birth_date(nir, date(1985, 5, 20))
        assert nir_matches_birth_date(nir, date(1885, 5, 20))  # only two digits of the year
        assert not nir_matches_birth_date(nir, date(1986, 5, 20))
        assert not nir_matches_birth_date(nir, date(1985, 6, 20))

    @pytest.mark.parametrize("month", ["20", "42", "50", "99"])
    def test_an_unknown_month_matches_any_month(self, month):
        nir = with_key(f"185{month}75115423")

        assert nir_matches_birth_date(nir, date(1985, 1, 1))
        assert nir_matches_birth_date(nir, date(1985, 12, 31))
        assert not nir_matches_birth_date(nir, date(1984, 12, 31))

    def test_department(self):
        nir = with_key("1850501115423")

        assert nir_matches_department(nir, "01")
        assert nir_matches_department(nir, "1")
        assert not nir_matches_department(nir, "02")

    def test_corsica_20_2a_and_2b_are_one_birth_place(self):
        before_split = with_key("1650320004017")
        ajaccio = with_key("178032A004017")

        assert nir_matches_department(before_split, "2a")
        assert nir_matches_department(before_split, "2B")
        assert nir_matches_department(ajaccio, "2A")
        assert nir_matches_department(ajaccio, "20")
        assert not nir_matches_department(ajaccio, "21")

    def test_overseas_and_abroad(self):
        assert nir_matches_department(with_key("2900397611123"), "976")
        assert not nir_matches_department(with_key("2900397611123"), "97")
        assert nir_matches_department(with_key("1920699352012"), "99")

    def test_nir_matches_birth_needs_both(self):
        nir = with_key("2900397611123")

        assert nir_matches_birth(nir, date(1990, 3, 8), "976")
        assert not nir_matches_birth(nir, date(1990, 3, 8), "974")
        assert not nir_matches_birth(nir, date(1990, 4, 8), "976")

    def test_an_invalid_nir_is_refused_rather_than_matched(self):
        with pytest.raises(InvalidNir):
            nir_matches_birth(wrong_key(with_key("1850575115423")), date(1985, 5, 1), "75")


def test_redacted_nir_hides_all_but_sex_and_birth_month():
    nir = with_key("1850575115423")

    redacted = redact_nir(nir)

    assert redacted.startswith("18505")
    assert nir[5:] not in redacted
    assert len(redacted) == 15
