"""Every user-facing string is translated to English, and the compiled catalog is current."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "idp" / "translations" / "en" / "LC_MESSAGES"
# What `pybabel extract -F babel.cfg` reads: pages, emails and SMS.
with open(ROOT / "babel.cfg", encoding="utf-8") as _cfg:
    METHODS, _OPTIONS = parse_mapping_cfg(_cfg)
KEYWORDS = {"_": None, "gettext": None, "_l": None, "lazy_gettext": None, "ngettext": (1, 2)}


def _source_messages(*, sms: bool = True) -> set[str]:
    """Every msgid in the sources (without ``sms``, but those of SMS); a plural message gives its
    singular and its plural."""
    found = set()
    for filename, _lineno, message, _comments, _context in extract_from_dir(
        ROOT, METHODS, _OPTIONS, keywords=KEYWORDS
    ):
        if sms or not filename.startswith("templates/sms/"):
            found.update([message] if isinstance(message, str) else message)
    return found


def _po():
    with open(CATALOG / "messages.po", "rb") as handle:
        return read_po(handle)


def _pairs(catalog):
    """(msgid, msgstr) of every entry; a plural entry gives one pair per form."""
    for message in catalog:
        if not message.id:
            continue
        if isinstance(message.id, str):
            yield message.id, message.string
        else:
            singular, plural = message.id
            strings = message.string or ("", "")
            yield singular, strings[0]
            yield plural, strings[-1]


def test_every_source_string_has_an_english_translation():
    translated = dict(_pairs(_po()))
    missing = sorted(m for m in _source_messages() if not translated.get(m))
    assert not missing, f"untranslated (update idp/translations, see README): {missing}"


def test_translations_keep_their_placeholders():
    for msgid, msgstr in _pairs(_po()):
        assert set(re.findall(r"%\(\w+\)s", msgid)) == set(re.findall(r"%\(\w+\)s", msgstr)), msgid


def test_compiled_catalog_matches_the_source_catalog():
    with open(CATALOG / "messages.mo", "rb") as handle:
        compiled = dict(_pairs(read_mo(handle)))
    source = {msgid: msgstr for msgid, msgstr in _pairs(_po()) if msgstr}
    assert compiled == source, "run: pybabel compile -d idp/translations"


NBSP = "\u00a0"
# French typography: a no-break space before the double punctuation and inside « ».
FRENCH_SPACING = re.compile(r"(?:[^\s\u00a0\u202f]|^)[?!:;](?=\s|$)|[ \t][?!:;]|« | »")
# English typography: nothing before them.
ENGLISH_SPACING = re.compile(r"[\s\u00a0\u202f][?!:;](?=\s|$)")
# Apostrophes in French text are typographic (’).
ASCII_APOSTROPHE = re.compile(r"(?<=[A-Za-zÀ-ÿ])'(?=[A-Za-zÀ-ÿ])")
MESSAGE_TEMPLATES = [*(ROOT / "templates" / "email").glob("*/*"), *(ROOT / "templates" / "sms").glob("*.txt")]


# A number and its unit, or the groups of a number written in groups, on one line: a no-break
# space between them (SMS excepted, whose alphabet has none).
SPLIT_NUMBER = re.compile(
    r"(?:%\(\w+\)s|\{\{ ?[\w.]+ ?\}\}|(?<![\w.])\d+) "
    r"(?:chiffres|minutes?|secondes?|caractères|jours|heures?|h|min|fois|clic|\d{2}\b)\b")


def _french_typos(text: str, *, numbers: bool = True) -> list[str]:
    split = [match.group() for match in SPLIT_NUMBER.finditer(text)] if numbers else []
    text = re.sub(r"https?://\S+|%\(\w+\)s|\{\{.*?\}\}|\{%.*?%\}", "", text)
    return split + [match.group() for match in FRENCH_SPACING.finditer(text)] + [
        match.group() for match in ASCII_APOSTROPHE.finditer(text)]


def test_french_strings_use_no_break_spaces_and_typographic_apostrophes():
    sms = _source_messages() - _source_messages(sms=False)
    wrong = {message: typos for message in _source_messages()
             if (typos := _french_typos(message, numbers=message not in sms))}
    assert not wrong, wrong


@pytest.mark.parametrize("path", MESSAGE_TEMPLATES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_emails_and_sms_follow_french_typography(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    sms = path.parent.name == "sms"
    wrong = [line for line in lines if _french_typos(line.replace("<br>", ""), numbers=not sms)]
    assert not wrong, wrong


def test_the_demo_portal_pages_follow_french_typography():
    """The portals' pages are French only, outside the catalogue."""
    wrong = [line for path in (ROOT / "templates" / "portal").glob("*.html")
             for line in path.read_text(encoding="utf-8").splitlines() if _french_typos(line)]
    assert not wrong, wrong


def test_english_strings_have_no_space_before_punctuation():
    wrong = [msgstr for _msgid, msgstr in _pairs(_po()) if ENGLISH_SPACING.search(msgstr)]
    assert not wrong, wrong


# Participles that agree with the member ("Vous êtes connecté"): the texts speak neutrally
# ("Connexion réussie", "vos sessions sont fermées").
GENDERED = re.compile(r"\b(?:dé)?connecté\b|\bêtes (?:couvert|adhérent)\b")
PORTAL_TEXTS = [*(ROOT / "templates" / "portal").glob("*.html"), ROOT / "idp" / "demo" / "portal.py"]


def test_french_texts_address_the_member_neutrally():
    texts = [*_source_messages(), *(path.read_text(encoding="utf-8") for path in PORTAL_TEXTS)]
    wrong = [line for text in texts for line in text.splitlines() if GENDERED.search(line)]
    assert not wrong, wrong
