"""Every user-facing string is translated to English, and the compiled catalog is current."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "idp" / "translations" / "en" / "LC_MESSAGES"
METHODS = [("idp/**.py", "python"), ("templates/base/**.html", "jinja2"),
           ("templates/malakoff/**.html", "jinja2"), ("templates/miel/**.html", "jinja2"),
           ("templates/email/**.html", "jinja2")]
KEYWORDS = {"_": None, "gettext": None, "_l": None, "lazy_gettext": None, "ngettext": (1, 2)}


def _source_messages() -> set[str]:
    found = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        ROOT, METHODS, keywords=KEYWORDS
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def _po():
    with open(CATALOG / "messages.po", "rb") as handle:
        return read_po(handle)


def test_every_source_string_has_an_english_translation():
    catalog = _po()
    translated = {m.id: m.string for m in catalog if m.id}
    missing = sorted(m for m in _source_messages() if not translated.get(m))
    assert not missing, f"untranslated (update idp/translations, see README): {missing}"


def test_translations_keep_their_placeholders():
    for message in _po():
        if message.id:
            assert set(re.findall(r"%\(\w+\)s", message.id)) == set(
                re.findall(r"%\(\w+\)s", message.string)), message.id


def test_compiled_catalog_matches_the_source_catalog():
    with open(CATALOG / "messages.mo", "rb") as handle:
        compiled = {m.id: m.string for m in read_mo(handle) if m.id}
    source = {m.id: m.string for m in _po() if m.id and m.string}
    assert compiled == source, "run: pybabel compile -d idp/translations"


NBSP = "\u00a0"
# French typography: a no-break space before the double punctuation and inside « ».
FRENCH_SPACING = re.compile(r"(?:[^\s\u00a0\u202f]|^)[?!:;](?=\s|$)|[ \t][?!:;]|« | »")
# English typography: nothing before them.
ENGLISH_SPACING = re.compile(r"[\s\u00a0\u202f][?!:;](?=\s|$)")
# Apostrophes in French text are typographic (’).
ASCII_APOSTROPHE = re.compile(r"(?<=[A-Za-zÀ-ÿ])'(?=[A-Za-zÀ-ÿ])")
MESSAGE_TEMPLATES = [*(ROOT / "templates" / "email").glob("*/*"), *(ROOT / "templates" / "sms").glob("*.txt")]


def _french_typos(text: str) -> list[str]:
    text = re.sub(r"https?://\S+|%\(\w+\)s|\{\{.*?\}\}|\{%.*?%\}", "", text)
    return [match.group() for match in FRENCH_SPACING.finditer(text)] + [
        match.group() for match in ASCII_APOSTROPHE.finditer(text)]


def test_french_strings_use_no_break_spaces_and_typographic_apostrophes():
    wrong = {message: typos for message in _source_messages() if (typos := _french_typos(message))}
    assert not wrong, wrong


@pytest.mark.parametrize("path", MESSAGE_TEMPLATES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_emails_and_sms_follow_french_typography(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    wrong = [line for line in lines if _french_typos(line.replace("<br>", ""))]
    assert not wrong, wrong


def test_english_strings_have_no_space_before_punctuation():
    wrong = [m.string for m in _po() if m.id and ENGLISH_SPACING.search(m.string)]
    assert not wrong, wrong
