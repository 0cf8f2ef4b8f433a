"""Password rules (SPEC §4): each rule for both tenants, the blocklist, the checklist macro and script."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
from jinja2 import Environment, FileSystemLoader

from idp.accounts.passwords import (
    RULE_CODES,
    SERVER_ONLY_RULES,
    PersonalData,
    Rule,
    check_password,
    common_passwords,
    fold,
    is_acceptable,
    password_errors,
)
from idp.tenancy import PasswordPolicy, load_tenants

ROOT = Path(__file__).resolve().parents[2]
TENANTS = load_tenants(ROOT / "config" / "tenants", "https://id.example.org")
MALAKOFF = TENANTS["malakoff"].password
MIEL = TENANTS["miel"].password
BOTH = pytest.mark.parametrize("policy", [MALAKOFF, MIEL], ids=["malakoff", "miel"])
BROWSER_RULES = [code for code in RULE_CODES if code not in SERVER_ONLY_RULES]
SCRIPT = ROOT / "idp" / "static" / "password-checklist.js"

GOOD = "Vx7#qLm2$tR9"  # meets every rule of both tenants
ETIENNE = PersonalData(first_name="Étienne", last_name="Le Gall", birth_date=date(1985, 3, 12),
                       member_number="40012345", email="e.legall+idp@example.fr")


def met(password: str, policy: PasswordPolicy, personal: PersonalData | None = None) -> dict[str, bool]:
    return {rule.code: rule.met for rule in check_password(password, policy, personal=personal)}


def test_the_tenants_use_the_spec_policies():
    assert (MALAKOFF.min_length, MALAKOFF.specials) == (8, "!@#*$%")
    assert (MIEL.min_length, MIEL.specials) == (8, "")
    assert MALAKOFF.max_length >= 64 and MIEL.max_length >= 64


@BOTH
def test_every_rule_is_reported_in_display_order(policy):
    rules = check_password("", policy)
    assert [rule.code for rule in rules] == list(RULE_CODES)
    assert all(isinstance(rule, Rule) for rule in rules)
    assert RULE_CODES == ("length", "lowercase", "uppercase", "digit", "special", "common", "personal")


@BOTH
def test_a_good_password_meets_every_rule(policy):
    assert all(met(GOOD, policy, ETIENNE).values())
    assert password_errors(GOOD, policy, ETIENNE) == []
    assert is_acceptable(GOOD, policy, ETIENNE)


# --- length ---------------------------------------------------------------------------------------

@BOTH
def test_length_from_minimum_to_maximum(policy):
    def padded(n):
        return (GOOD + "k" * n)[:n]
    assert not met(padded(policy.min_length - 1), policy)["length"]
    assert met(padded(policy.min_length), policy)["length"]
    assert met(padded(64), policy)["length"]
    assert met(padded(policy.max_length), policy)["length"]
    assert not met(padded(policy.max_length + 1), policy)["length"]
    assert password_errors(padded(policy.max_length + 1), policy) == ["length"]


@BOTH
def test_a_64_character_passphrase_is_accepted(policy):
    passphrase = "Quatre chevaux bleus mangent 7 pommes vertes au bord du lac #2!"
    passphrase = (passphrase + " zut")[:64]
    assert len(passphrase) == 64
    assert is_acceptable(passphrase, policy)


def test_length_counts_characters_not_bytes_and_normalises_accents():
    composed, decomposed = "Éléphant7!", "E\u0301le\u0301phant7!"
    assert met(composed, MALAKOFF) == met(decomposed, MALAKOFF)
    assert met("Éé1!Ééé", MALAKOFF)["length"] is False  # 7 characters, 11 bytes in UTF-8


# --- character classes ----------------------------------------------------------------------------

@BOTH
@pytest.mark.parametrize(("password", "code", "expected"), [
    ("ABCDEF1!", "lowercase", False),
    ("ABCDEf1!", "lowercase", True),
    ("ABCDÉé1!", "lowercase", True),
    ("abcdef1!", "uppercase", False),
    ("abcdeF1!", "uppercase", True),
    ("abcdéÉ1!", "uppercase", True),
    ("Abcdefg!", "digit", False),
    ("Abcdef²!", "digit", False),
    ("Abcdef0!", "digit", True),
])
def test_character_classes(policy, password, code, expected):
    assert met(password, policy)[code] is expected


@pytest.mark.parametrize(("password", "expected"), [
    ("Abcdefg1", False),
    ("Abcdef1&", False),
    ("Abcdef1 ", False),
    ("Abcdef1.", False),
    *((f"Abcdef1{c}", True) for c in "!@#*$%"),
])
def test_malakoff_special_is_one_of_its_list(password, expected):
    assert met(password, MALAKOFF)["special"] is expected


@pytest.mark.parametrize(("password", "expected"), [
    ("Abcdefg1", False),
    ("Abcdef1é", False),
    ("Abcdef1&", True),
    ("Abcdef1.", True),
    ("Abcdef1 ", True),
    ("Abcdef1€", True),
    ("Abcdef1!", True),
])
def test_miel_special_is_anything_but_a_letter_or_a_number(password, expected):
    assert met(password, MIEL)["special"] is expected


# --- common passwords -----------------------------------------------------------------------------

def test_the_blocklist_is_large_folded_and_shipped_with_the_package():
    listed = common_passwords()
    assert len(listed) >= 10_000
    assert all(entry == fold(entry) and entry.strip() for entry in listed)
    assert common_passwords() is listed  # read once


@pytest.mark.parametrize("entry", [
    "password", "123456", "qwerty", "azerty", "azertyuiop", "azerty123", "motdepasse", "soleil",
    "marseille", "bonjour", "jetaime", "doudou", "loulou", "chouchou", "nicolas", "camille",
])
def test_the_blocklist_has_english_and_french_common_passwords(entry):
    assert entry in common_passwords()


@BOTH
@pytest.mark.parametrize("password", [
    "password", "PASSWORD", "Password", "azerty123", "Azerty123!", "AZERTY123", "MotDePasse",
    "motdepasse", "Soleil2024!", "2024Soleil!", "!!Marseille13", "Sóleil2024!",
])
def test_common_passwords_are_refused_whatever_their_case_accents_and_decorations(policy, password):
    assert not met(password, policy)["common"]
    assert "common" in password_errors(password, policy)


@BOTH
@pytest.mark.parametrize("password", [
    GOOD,
    "Abc!4821%9",          # "abc" is listed but too short to be the core of a common password
    "Soleil-Marteau-Pluie-7",  # listed words inside a longer passphrase
])
def test_other_passwords_are_not_common(policy, password):
    assert met(password, policy)["common"]


def test_a_short_listed_core_is_not_enough_to_refuse():
    assert "abc" in common_passwords()


# --- personal data --------------------------------------------------------------------------------

@BOTH
@pytest.mark.parametrize("password", [
    "etienne2024!X",       # first name, without its accent
    "ETIENNE2024!x",
    "Xy!Étienne9",
    "E.t.i.e.n.n.e.9!X",   # separators are ignored
    "Gall2024!xQ",         # a word of the last name
    "LeGall2024!x",
    "Zq!1985rT7",          # birth year (also inside DDMMYYYY and YYYYMMDD)
    "Zq!12031985rT",
    "Zq!19850312rT",
    "Zq!120385rT",         # DDMMYY
    "Zq!12/03/85rT",
    "Zq!850312rT",         # YYMMDD
    "Zq!40012345rT",       # member number
    "Zq!e.legall7T",       # email local part (before +tag)
    "Zq!elegall7T",
    "Zq!legall7T",         # a piece of it
])
def test_personal_data_is_refused(policy, password):
    assert not met(password, policy, ETIENNE)["personal"]
    assert "personal" in password_errors(password, policy, ETIENNE)


@BOTH
@pytest.mark.parametrize("password", [
    GOOD,
    "Lemon42!xyzW",        # "le" is a particle, not the name
    "Zq!1984rT7w",         # another year
    "Zq!130385rT",         # another day
    "Zq!4001234rT",        # part of the member number only
])
def test_other_passwords_do_not_contain_personal_data(policy, password):
    assert met(password, policy, ETIENNE)["personal"]


def test_short_names_and_missing_data_are_not_checked():
    short = PersonalData(first_name="Li", last_name="Ng", email="li@example.fr", member_number="12")
    assert met("LiNg12li!xyzW", MALAKOFF, short)["personal"]
    assert met("LiNg12li!xyzW", MALAKOFF, PersonalData())["personal"]
    assert met("etienne2024!X", MALAKOFF)["personal"]  # no personal data given


def test_name_particles_are_not_names_but_long_names_are():
    personal = PersonalData(first_name="Marie", last_name="Van der Berg")
    assert met("Vandal!2024x", MALAKOFF, personal)["personal"]
    assert not met("Berg!2024xyZ", MALAKOFF, personal)["personal"]
    assert not met("mArIe!2024xyZ", MALAKOFF, personal)["personal"]


def test_several_rules_fail_together_in_display_order():
    assert password_errors("etienne", MALAKOFF, ETIENNE) == [
        "length", "uppercase", "digit", "special", "common", "personal"]  # "etienne" is listed too
    assert not is_acceptable("etienne", MALAKOFF, ETIENNE)


# --- the browser's checklist script ---------------------------------------------------------------

def test_the_script_checks_every_rule_the_browser_can():
    source = SCRIPT.read_text(encoding="utf-8")
    for code in BROWSER_RULES:
        assert f'"{code}"' in source
    assert "data-password-checklist" in source
    assert "aria-live" not in source  # the live region is in the markup, polite, announced after a pause
    assert "innerHTML" not in source and "eval(" not in source


PARITY_SAMPLES = [
    "", "abc", "Abcdefg1", "Abcdef1!", "Abcdef1&", "Abcdef1 ", "ABCDEF1!", "abcdef1!", "Éléphant7!",
    "E\u0301le\u0301phant7!", "ÉLÉPHANT7!", "Abcdef²!", "Abcdef1€", "Пароль1!x", "😀😀😀😀Aa1!",
    "x" * 127 + "A1!", "x" * 126 + "A1!",
]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@BOTH
def test_the_script_agrees_with_the_server_on_the_rules_it_checks(policy):
    options = {"minLength": policy.min_length, "maxLength": policy.max_length, "specials": policy.specials}
    program = (f"const m = require({json.dumps(str(SCRIPT))});"
               f"const o = {json.dumps(options)};"
               f"console.log(JSON.stringify({json.dumps(PARITY_SAMPLES)}.map(p => m.evaluate(p, o))));")
    run = subprocess.run(["node", "-e", program], capture_output=True, text=True, check=True, timeout=30)  # noqa: S603, S607
    browser = json.loads(run.stdout)
    for password, in_browser in zip(PARITY_SAMPLES, browser, strict=True):
        server = met(password, policy)
        assert in_browser == {code: server[code] for code in BROWSER_RULES}, password


# --- the checklist macro --------------------------------------------------------------------------

class _Items(HTMLParser):
    def __init__(self):
        super().__init__()
        self.lists: list[dict] = []
        self.items: list[dict] = []
        self.summary: dict | None = None
        self._current: dict | None = None
        self._span: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "ul":
            self.lists.append(attributes)
        elif tag == "li":
            self._current = {**attributes, "marker": "", "text": "", "status": ""}
            self.items.append(self._current)
        elif tag == "span" and self._current is not None:
            classes = (attributes.get("class") or "").split()
            for part in ("marker", "status", "text"):
                if f"password-rule-{part}" in classes:
                    self._span = part
        elif tag == "p" and attributes.get("aria-live"):
            self.summary = attributes

    def handle_endtag(self, tag):
        if tag == "li":
            self._current = None
        elif tag == "span" and self._span in ("marker", "status"):
            self._span = None

    def handle_data(self, data):
        if self._current is not None and self._span:
            self._current[self._span] += data.strip()


def render(policy: PasswordPolicy, results=None, input_id=None) -> tuple[str, _Items]:
    environment = Environment(loader=FileSystemLoader(ROOT / "templates"), autoescape=True,
                              extensions=["jinja2.ext.i18n"])
    environment.install_null_translations(newstyle=True)  # as Flask-Babel installs gettext
    template = environment.from_string(
        '{% from "base/password_checklist.html" import checklist %}'
        '{{ checklist("password-rules", policy, results, input_id) }}')
    html = template.render(policy=policy, results=results, input_id=input_id)
    parser = _Items()
    parser.feed(html)
    return html, parser


@BOTH
def test_the_macro_lists_every_rule_without_a_state_before_a_submit(policy):
    html, page = render(policy)
    assert [item["data-rule"] for item in page.items] == list(RULE_CODES)
    assert all("data-met" not in item and item["marker"] == "•" and not item["status"] for item in page.items)
    assert {item["data-rule"] for item in page.items if "data-server-check" in item} == SERVER_ONLY_RULES
    (checklist,) = page.lists
    assert checklist["id"] == "password-rules"
    assert checklist["data-min-length"] == str(policy.min_length)
    assert checklist["data-max-length"] == str(policy.max_length)
    assert checklist["data-specials"] == policy.specials
    assert (checklist["data-text-met"], checklist["data-text-unmet"]) == ("respecté", "non respecté")
    assert "{met}" in checklist["data-text-summary"] and "{total}" in checklist["data-text-summary"]
    assert page.summary == {"id": "password-rules-summary", "class": "visually-hidden", "aria-live": "polite"}
    assert "<script" not in html and "style=" not in html  # CSP: script-src 'self', no inline styles
    assert f"Au moins {policy.min_length}\u00a0caractères" in html


def test_the_macro_names_each_tenants_specials():
    assert "Un caractère spécial parmi ! @ # * $ %" in render(MALAKOFF)[0]
    assert "Un caractère spécial (ponctuation ou symbole)" in render(MIEL)[0]


@BOTH
def test_the_macro_shows_the_servers_verdict_after_a_submit(policy):
    results = check_password("etienne", policy, personal=ETIENNE)
    _html, page = render(policy, results)
    verdict = {rule.code: rule.met for rule in results}
    for item in page.items:
        expected = verdict[item["data-rule"]]
        assert item["data-met"] == ("true" if expected else "false")
        assert item["marker"] == ("✓" if expected else "✗")
        assert item["status"] == ("respecté" if expected else "non respecté")


def test_the_macro_takes_the_failed_codes_too():
    _html, page = render(MIEL, ["uppercase", "personal"])
    assert {item["data-rule"]: item["data-met"] for item in page.items} == {
        code: "false" if code in ("uppercase", "personal") else "true" for code in RULE_CODES}


def test_an_empty_verdict_shows_no_state_and_the_input_can_be_named_by_the_list():
    _html, page = render(MALAKOFF, [], input_id="password")
    assert all("data-met" not in item for item in page.items)
    assert page.lists[0]["data-password-input"] == "password"


def test_the_macro_strings_are_translatable():
    source = (ROOT / "templates" / "base" / "password_checklist.html").read_text(encoding="utf-8")
    visible = re.sub(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", "", source, flags=re.DOTALL)
    assert not re.search(r"[A-Za-zÀ-ÿ]{3,}", re.sub(r"<[^>]+>", "", visible))
