"""A tenant's [sms] section: the regions whose mobiles may receive an SMS, and its hourly budget."""

from __future__ import annotations

import pytest

from idp.config import ConfigError
from idp.tenancy import FRANCE_AND_OVERSEAS, SmsPolicy, load_tenants

HEAD = ('slug = "acme"\nbrand = "A"\nportal_name = "P"\nlogin_identifier = "email"\n'
        'terms_version = "1"\n')


def _load(tmp_path, text: str) -> SmsPolicy:
    (tmp_path / "acme.toml").write_text(HEAD + text, encoding="utf-8")
    return load_tenants(tmp_path, "https://id.example.org")["acme"].sms


def test_without_a_section_france_and_its_overseas_territories_and_500_an_hour(tmp_path):
    policy = _load(tmp_path, "")
    assert policy.countries == FRANCE_AND_OVERSEAS and policy.budget_per_hour == 500


def test_a_section_names_its_own_regions_and_budget(tmp_path):
    policy = _load(tmp_path, '[sms]\ncountries = ["FR", "BE"]\nbudget_per_hour = 50\n')
    assert policy.countries == ("FR", "BE") and policy.budget_per_hour == 50
    assert policy.allows("+32470123456") and not policy.allows("+262692123456")


@pytest.mark.parametrize(("number", "allowed"), [
    ("+33612345678", True),
    ("+262692123456", True),   # La Réunion
    ("+262639012345", True),   # Mayotte
    ("+590690001234", True),   # Guadeloupe, Saint-Barthélemy, Saint-Martin
    ("+594694201234", True),   # French Guiana
    ("+596696201234", True),   # Martinique
    ("+508551234", True),      # Saint-Pierre-et-Miquelon
    ("+681821234", True),      # Wallis-et-Futuna
    ("+687751234", True),      # New Caledonia
    ("+68987123456", True),    # French Polynesia
    ("+2693212345", False),    # the Comoros: +269 is not Mayotte
    ("+4915123456789", False),
    ("+37799123456", False),   # Monaco
    ("not a number", False),
])
def test_the_default_regions(number, allowed):
    assert SmsPolicy().allows(number) is allowed


@pytest.mark.parametrize(("text", "message"), [
    ('[sms]\ncountries = "FR"', "list of region codes"),
    ("[sms]\ncountries = []", "list of region codes"),
    ('[sms]\ncountries = ["France"]', "list of region codes"),
    ('[sms]\ncountries = ["fr"]', "list of region codes"),
    ("[sms]\nbudget_per_hour = 0", "whole number from 1 to 1000000"),
    ('[sms]\nbudget_per_hour = "500"', "whole number from 1 to 1000000"),
    ("[sms]\nbudget_per_hour = true", "whole number from 1 to 1000000"),
    ("[sms]\nbudget = 10", "unknown keys in \\[sms\\]"),
])
def test_bad_sections_are_refused(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, text)
