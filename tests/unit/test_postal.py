"""Postal addresses as the envelope's window shows them (La Poste's norm: 6 lines of 38)."""

from __future__ import annotations

import pytest

from idp.registry.postal import (
    InvalidAddress,
    PostalAddress,
    check_country,
    check_postcode,
    check_text,
    country_name,
    parse_lines,
    without_accents,
)


def test_a_french_address_ends_with_the_postcode_and_city_in_capitals_without_accents():
    address = PostalAddress("Jean-Pierre DUPONT-MOREL", ("14 avenue Jean Jaurès",), "42000",
                            "Saint-Étienne")

    assert address.lines() == ["Jean-Pierre DUPONT-MOREL", "14 avenue Jean Jaurès",
                               "42000 SAINT-ETIENNE"]
    assert not address.abroad
    assert str(address) == "Jean-Pierre DUPONT-MOREL\n14 avenue Jean Jaurès\n42000 SAINT-ETIENNE"


def test_an_address_abroad_ends_with_the_country_in_french():
    address = PostalAddress("Karim BENALI", ("Avenue Louise 54", "Boîte 3"), "1050", "Bruxelles",
                            "BE")

    assert address.lines() == ["Karim BENALI", "Avenue Louise 54", "Boîte 3", "1050 BRUXELLES",
                               "BELGIQUE"]


def test_at_most_six_lines_of_38_characters():
    address = PostalAddress("Marie-Christine de La Tour d’Auvergne-Lauraguais",
                            ("Résidence du Parc", "Bâtiment C", "12 allée des Peupliers"), "H2X 1Y4",
                            "Montréal", "CA")

    lines = address.lines()
    assert len(lines) == 6
    assert all(len(line) <= 38 for line in lines)
    assert lines[0] == "Marie-Christine de La Tour d’Auvergne-"
    assert lines[-2:] == ["H2X 1Y4 MONTREAL", "CANADA"]


@pytest.mark.parametrize("street", [(), ("1", "2", "3", "4")])
def test_one_to_three_street_lines(street):
    with pytest.raises(InvalidAddress, match="1 to 3 street lines"):
        PostalAddress("A B", street, "75001", "Paris")


def test_letters_without_accents():
    assert without_accents("Œuvrard Ærø Łódź Straße l’Haÿ") == "OEuvrard AEro Lodz StraSSe l'Hay"


@pytest.mark.parametrize(("country", "value", "expected"), [
    ("FR", " 75002 ", "75002"), ("FR", "97400", "97400"), ("GB", "sw1a  1aa", "SW1A 1AA"),
    ("PL", "00-950", "00-950"), ("BE", "1000", "1000"),
])
def test_postcodes(country, value, expected):
    assert check_postcode(value, country) == expected


@pytest.mark.parametrize(("country", "value"), [
    ("FR", "7500"), ("FR", "750001"), ("FR", "2A004"), ("FR", ""), ("GB", "-1000"),
    ("GB", "12345678901"), ("DE", "10 115!"),
])
def test_bad_postcodes(country, value):
    with pytest.raises(InvalidAddress):
        check_postcode(value, country)


def test_countries():
    assert check_country("") == "FR"
    assert check_country(" be ") == "BE"
    assert country_name("DE") == "ALLEMAGNE"
    for bad in ("FRA", "F", "ZZ", "EU", "12"):
        with pytest.raises(InvalidAddress):
            check_country(bad)


@pytest.mark.parametrize("value", ["a\tb", "a\nb", "a\x00b", "a\u200bb", "a\u2028b", "a\ud800b"])
def test_control_and_invisible_characters_are_refused(value):
    with pytest.raises(InvalidAddress, match="control or invisible"):
        check_text(value)


def test_stored_lines_are_checked():
    assert parse_lines("A B\n75001 PARIS") == ["A B", "75001 PARIS"]
    for bad in ("A B", "\n".join(["x"] * 7), "A B\n\n75001 PARIS", "A B\n" + "x" * 39,
                "A B\n75001\tPARIS"):
        with pytest.raises(InvalidAddress):
            parse_lines(bad)
