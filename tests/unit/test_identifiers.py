"""idp.identifiers: member numbers, emails, mobiles and birth dates as members and operators type them."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from idp.identifiers import (
    DD_MM_YYYY,
    YYYY_MM_DD,
    InvalidIdentifier,
    is_email,
    is_member_number,
    normalize_email,
    parse_birth_date,
    parse_email,
    parse_member_number,
    parse_mobile,
)

TODAY = date(2026, 6, 1)


def refusal(parse, text: str, **options) -> InvalidIdentifier:
    with pytest.raises(InvalidIdentifier) as refused:
        parse(text, **options)
    return refused.value


class TestMemberNumber:
    @pytest.mark.parametrize(("typed", "number"), [
        ("23456789", "23456789"),
        ("2345 6789", "23456789"),
        (" 23456789 ", "23456789"),
        ("23 45 67 89", "23456789"),
        ("2345\t6789", "23456789"),
        ("\t23456789\n", "23456789"),
        ("2345\u00a06789", "23456789"),  # non-breaking space, as copied from a letter
        ("2345\u202f6789", "23456789"),  # narrow no-break space, French typography
        ("00000000", "00000000"),
    ])
    def test_valid_numbers_lose_their_spaces(self, typed, number):
        assert parse_member_number(typed) == number
        assert is_member_number(typed)

    @pytest.mark.parametrize(("typed", "reason"), [
        ("", "required"),
        ("   ", "required"),
        ("\t", "required"),
        ("1234567", "format"),
        ("123456789", "format"),
        ("1234 567", "format"),
        ("2345 67890", "format"),
        ("1234567A", "format"),
        ("2345-6789", "format"),
        ("+23456789", "format"),
        ("٢٣٤٥٦٧٨٩", "format"),  # Arabic-Indic digits: \d took them
        ("２３４５６７８９", "format"),  # full-width digits
        ("۲۳۴۵۶۷۸۹", "format"),  # Persian digits
        ("2345678\u0669", "format"),  # one non-ASCII digit among ASCII ones
        ("2345\u200b6789", "format"),  # a zero-width space is not a space
        ("jeanne@example.org", "format"),
    ])
    def test_anything_else_is_refused(self, typed, reason):
        assert refusal(parse_member_number, typed).reason == reason
        assert not is_member_number(typed)

    def test_messages_complete_the_field_name_in_reports(self):
        assert str(refusal(parse_member_number, "1234")) == "must be exactly 8 digits"
        assert str(refusal(parse_member_number, "")) == "is required"

    def test_the_error_is_a_value_error(self):
        with pytest.raises(ValueError, match="8 digits"):
            parse_member_number("1")


class TestEmail:
    @pytest.mark.parametrize(("typed", "stored"), [
        ("jeanne.martin@example.org", "jeanne.martin@example.org"),
        (" Jeanne.Martin@Example.ORG ", "jeanne.martin@example.org"),
        ("\tjeanne@example.org\n", "jeanne@example.org"),
        ("JP+mutuelle@sub.example.fr", "jp+mutuelle@sub.example.fr"),
    ])
    def test_addresses_are_trimmed_and_lowercased(self, typed, stored):
        assert normalize_email(typed) == stored
        assert parse_email(typed) == stored

    @pytest.mark.parametrize(("typed", "reason"), [
        ("", "required"),
        ("  ", "required"),
        ("jeanne", "format"),
        ("jeanne@", "format"),
        ("@example.org", "format"),
        ("jeanne@example", "format"),
        ("jeanne martin@example.org", "format"),
        ("jeanne@@example.org", "format"),
        ("jeanne@example.org\nbcc@example.org", "format"),
        ("a" * 243 + "@example.org", "format"),  # 255 characters
    ])
    def test_malformed_addresses_are_refused(self, typed, reason):
        assert refusal(parse_email, typed).reason == reason

    def test_the_longest_address_is_254_characters(self):
        longest = "a" * 242 + "@example.org"
        assert len(longest) == 254 and parse_email(longest) == longest

    @pytest.mark.parametrize(("text", "shaped"), [
        ("jeanne@example.org", True),
        ("Jeanne@Example.org", True),  # the shape only: case is normalize_email's business
        (" jeanne@example.org", False),  # as given: callers that accept spaces strip first
        ("jeanne@example", False),
    ])
    def test_is_email_checks_the_text_as_given(self, text, shaped):
        assert is_email(text) is shaped


class TestMobile:
    @pytest.mark.parametrize(("typed", "e164"), [
        ("06 12 34 56 78", "+33612345678"),
        ("0612345678", "+33612345678"),
        ("06.12.34.56.78", "+33612345678"),
        ("06-12-34-56-78", "+33612345678"),
        ("07 81 99 88 77", "+33781998877"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("+33612345678", "+33612345678"),
        ("0033 6 12 34 56 78", "+33612345678"),
        ("+33 (0)6 12 34 56 78", "+33612345678"),
        (" 06 12 34 56 78 ", "+33612345678"),
        ("06\u00a012\u00a034\u00a056\u00a078", "+33612345678"),
    ])
    def test_french_mobiles_national_or_international(self, typed, e164):
        assert parse_mobile(typed) == e164

    @pytest.mark.parametrize(("typed", "e164"), [
        ("+262 692 12 34 56", "+262692123456"),  # La Réunion
        ("0692 12 34 56", "+262692123456"),  # as dialled from France: same national plan
        ("+590 690 12 34 56", "+590690123456"),  # Guadeloupe
        ("0690 12 34 56", "+590690123456"),
        ("+596 696 12 34 56", "+596696123456"),  # Martinique
        ("0696 12 34 56", "+596696123456"),
        ("+594 694 20 12 34", "+594694201234"),  # Guyane
        ("0694 20 12 34", "+594694201234"),
        ("0639 69 12 34", "+262639691234"),  # Mayotte
    ])
    def test_overseas_departments_mobiles(self, typed, e164):
        assert parse_mobile(typed) == e164

    def test_other_countries_need_their_prefix(self):
        assert parse_mobile("+32 470 12 34 56") == "+32470123456"
        assert parse_mobile("+44 7911 123456") == "+447911123456"

    def test_another_default_region(self):
        assert parse_mobile("0470 12 34 56", "BE") == "+32470123456"

    @pytest.mark.parametrize(("typed", "reason"), [
        ("01 23 45 67 89", "not_mobile"),  # Paris landline
        ("01 45 67 89 10", "not_mobile"),
        ("04 72 00 00 00", "not_mobile"),
        ("+33 1 23 45 67 89", "not_mobile"),
        ("0262 12 34 56", "not_mobile"),  # La Réunion landline
        ("08 00 12 34 56", "not_mobile"),  # toll-free
        ("06 12", "invalid"),
        ("06 12 34 56 78 90 12", "invalid"),
        ("+33 6 12", "invalid"),
        ("", "not_a_number"),
        ("abc", "not_a_number"),
        ("not a phone", "not_a_number"),
        ("@", "not_a_number"),
    ])
    def test_landlines_and_garbage_are_refused(self, typed, reason):
        assert refusal(parse_mobile, typed).reason == reason

    def test_messages_complete_the_field_name_in_reports(self):
        assert str(refusal(parse_mobile, "abc")) == "is not a phone number"
        assert str(refusal(parse_mobile, "06 12")) == "is not a valid phone number"
        assert str(refusal(parse_mobile, "01 23 45 67 89")) == "is not a mobile number"


class TestBirthDate:
    @pytest.mark.parametrize("typed", [
        "14/03/1958", "1958-03-14", "14-03-1958", "14.03.1958", " 14/03/1958 ", "14/3/1958",
        # On a phone's keypad of digits, which has no "/".
        "14031958", "14 03 1958", "14 3 1958",
    ])
    def test_the_forms_members_type(self, typed):
        assert parse_birth_date(typed, today=TODAY) == date(1958, 3, 14)

    def test_single_digit_day_and_month(self):
        assert parse_birth_date("2/4/1956", today=TODAY) == date(1956, 4, 2)

    def test_the_limits_are_included(self):
        assert parse_birth_date("01/01/1900", today=TODAY) == date(1900, 1, 1)
        assert parse_birth_date("01/06/2026", today=TODAY) == TODAY

    def test_today_defaults_to_the_machines_date(self):
        assert parse_birth_date("14/03/1958") == date(1958, 3, 14)
        with pytest.raises(InvalidIdentifier):
            parse_birth_date((date.today() + timedelta(days=1)).isoformat())

    @pytest.mark.parametrize(("typed", "reason"), [
        ("", "required"),
        ("14/03/58", "format"),
        ("1958/03/14", "format"),
        ("14/03-1958", "format"),
        ("1431958", "format"),
        ("140358", "format"),
        ("14 03 58", "format"),
        ("14 031958", "format"),
        ("19580314", "invalid"),  # read as day 19, month 58
        ("le 14 mars 1958", "format"),
        ("١٤/٠٣/١٩٥٨", "format"),  # Arabic-Indic digits
        ("１４/０３/１９５８", "format"),  # full-width digits
        ("31/02/1958", "invalid"),
        ("1958-02-30", "invalid"),
        ("00/03/1958", "invalid"),
        ("14/13/1958", "invalid"),
        ("02/06/2026", "future"),
        ("31/12/1899", "too_old"),
    ])
    def test_refused(self, typed, reason):
        assert refusal(parse_birth_date, typed, today=TODAY).reason == reason

    def test_layouts_restrict_what_is_read(self):
        assert parse_birth_date("1958-03-14", today=TODAY, layouts=(YYYY_MM_DD,)) == date(1958, 3, 14)
        assert str(refusal(parse_birth_date, "14/03/1958", today=TODAY, layouts=(YYYY_MM_DD,))) == (
            "is not a date (expected YYYY-MM-DD)")
        assert str(refusal(parse_birth_date, "14.03.1958", today=TODAY,
                           layouts=(YYYY_MM_DD, DD_MM_YYYY))) == (
            "is not a date (expected YYYY-MM-DD or DD/MM/YYYY)")

    def test_messages_complete_the_field_name_in_reports(self):
        assert str(refusal(parse_birth_date, "1958-02-30", today=TODAY)) == (
            "'1958-02-30' is not a valid date")
        assert str(refusal(parse_birth_date, "2026-06-02", today=TODAY)) == "is in the future"
        assert str(refusal(parse_birth_date, "1899-12-31", today=TODAY)) == "is before 1900"
