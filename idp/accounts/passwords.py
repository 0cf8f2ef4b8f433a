"""Password rules (SPEC §4): what a new password must satisfy, rule by rule.

Pure: no Flask, no database. Views and the CLI call ``check_password`` (every
rule, met or not, for the live checklist) or ``password_errors`` (the codes that
failed) and translate the codes themselves; no message text lives here.

Rules, in display order (``RULE_CODES``):

``length``
    ``policy.min_length`` to ``policy.max_length`` characters, counted as
    Unicode code points after NFC normalisation (the browser checklist counts
    the same way). A password over the maximum fails this rule.
``lowercase`` / ``uppercase``
    At least one lowercase / uppercase letter, in any script (Unicode
    categories Ll / Lu, the same classes as the browser's ``\\p{Ll}``/``\\p{Lu}``).
``digit``
    At least one of 0-9.
``special``
    At least one of ``policy.specials`` (Malakoff: ``!@#*$%``); when the tenant
    leaves it empty (Miel), any character that is neither a letter nor a number
    (punctuation, symbols, spaces).
``common``
    Not in the shipped list of common/breached passwords (see
    ``idp/accounts/data/README.md``). The comparison ignores case and accents,
    and is made twice: on the whole password, and on its core once the leading
    and trailing runs of non-letters are removed, when that core has at least
    ``MIN_COMMON_CORE`` characters. So "Azerty123!" and "2024Soleil!" are
    refused (a listed word with predictable decorations), while "Xy93!#@$%&"
    is not refused merely because "xy" is short and listed.
``personal``
    Does not contain, ignoring case, accents and everything that is not a
    letter or a digit: a word of the member's first or last name (each word of
    at least 3 letters, name particles such as "des" or "van" excepted); their
    birth date as YYYY (the birth year, which also covers DDMMYYYY and
    YYYYMMDD), DDMMYY or YYMMDD; their member number; their email's local part
    (before any "+tag") or a piece of it between dots, dashes, underscores (at
    least 3 characters each). Separators typed in the password are ignored, so
    "12/03/85" matches DDMMYY and "E.t.i.e.n.n.e" matches "Étienne".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources

from idp.tenancy import PasswordPolicy

RULE_CODES = ("length", "lowercase", "uppercase", "digit", "special", "common", "personal")
# Checked by the server only: the list is too big to ship to the browser, and
# the member's personal data must not be put in the page.
SERVER_ONLY_RULES = frozenset({"common", "personal"})

COMMON_PASSWORDS_FILE = "common-passwords.txt"
# A shorter core ("ab" of "Ab#48!x9%") is not a common password with decorations.
MIN_COMMON_CORE = 4
MIN_PERSONAL_FRAGMENT = 3
# Words of a name that are not the name: "Le Gall" is refused for "gall", not "le".
NAME_PARTICLES = frozenset({"des", "les", "del", "der", "den", "van", "von", "dos", "das", "della"})
DIGITS = frozenset("0123456789")
_EMAIL_PIECE_SEPARATORS = re.compile(r"[._\-]+")


@dataclass(frozen=True)
class Rule:
    code: str
    met: bool


@dataclass(frozen=True)
class PersonalData:
    """What the member's password must not contain; any of it may be unknown."""

    first_name: str | None = None
    last_name: str | None = None
    birth_date: date | None = None
    member_number: str | None = None
    email: str | None = None

    @classmethod
    def of(cls, account) -> PersonalData:
        """What an account knows of its member (an ``accounts.models.Account``)."""
        return cls(first_name=account.given_name, last_name=account.family_name,
                   birth_date=account.birthdate, member_number=account.member_number,
                   email=account.email)


def fold(text: str) -> str:
    """Case- and accent-insensitive form: "Étienne" and "ETIENNE" both give "etienne"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _alphanumeric(text: str) -> str:
    return "".join(c for c in text if c.isalnum())


def _strip_non_letters(text: str) -> str:
    start, end = 0, len(text)
    while start < end and not text[start].isalpha():
        start += 1
    while end > start and not text[end - 1].isalpha():
        end -= 1
    return text[start:end]


@cache
def common_passwords() -> frozenset[str]:
    """The shipped blocklist, already folded (one entry a line), read once."""
    data = resources.files("idp.accounts") / "data" / COMMON_PASSWORDS_FILE
    return frozenset(line for line in data.read_text(encoding="utf-8").splitlines() if line)


def is_common(password: str) -> bool:
    listed = common_passwords()
    folded = fold(password)
    if folded in listed:
        return True
    core = _strip_non_letters(folded)
    return len(core) >= MIN_COMMON_CORE and core in listed


def personal_fragments(personal: PersonalData) -> set[str]:
    """The folded, alphanumeric-only strings a password may not contain."""
    fragments: set[str] = set()
    for name in (personal.first_name, personal.last_name):
        for word in re.split(r"\W+", fold(name or "")):
            word = _alphanumeric(word)
            letters = sum(c.isalpha() for c in word)
            if letters >= MIN_PERSONAL_FRAGMENT and word not in NAME_PARTICLES:
                fragments.add(word)
    if personal.birth_date:
        day, month, year = personal.birth_date.day, personal.birth_date.month, personal.birth_date.year
        # YYYY also covers DDMMYYYY and YYYYMMDD; the two-digit-year forms need their own.
        fragments |= {f"{year:04d}", f"{day:02d}{month:02d}{year % 100:02d}",
                      f"{year % 100:02d}{month:02d}{day:02d}"}
    member_number = _alphanumeric(fold(personal.member_number or ""))
    if len(member_number) >= MIN_PERSONAL_FRAGMENT:
        fragments.add(member_number)
    if personal.email and "@" in personal.email:
        local = fold(personal.email.rsplit("@", 1)[0]).split("+", 1)[0]
        for piece in (local, *_EMAIL_PIECE_SEPARATORS.split(local)):
            piece = _alphanumeric(piece)
            if len(piece) >= MIN_PERSONAL_FRAGMENT:
                fragments.add(piece)
    return fragments


def contains_personal_data(password: str, personal: PersonalData | None) -> bool:
    if personal is None:
        return False
    haystack = _alphanumeric(fold(password))
    return any(fragment in haystack for fragment in personal_fragments(personal))


def _has_special(text: str, specials: str) -> bool:
    if specials:
        return any(c in specials for c in text)
    return any(not c.isalnum() for c in text)


def check_password(password: str, policy: PasswordPolicy, *,
                   personal: PersonalData | None = None) -> list[Rule]:
    """Every rule of ``RULE_CODES``, in that order, with whether the password meets it."""
    text = unicodedata.normalize("NFC", password)
    categories = [unicodedata.category(c) for c in text]
    met = {
        "length": policy.min_length <= len(text) <= policy.max_length,
        "lowercase": "Ll" in categories,
        "uppercase": "Lu" in categories,
        "digit": any(c in DIGITS for c in text),
        "special": _has_special(text, policy.specials),
        "common": not is_common(text),
        "personal": not contains_personal_data(text, personal),
    }
    return [Rule(code, met[code]) for code in RULE_CODES]


def password_errors(password: str, policy: PasswordPolicy,
                    personal: PersonalData | None = None) -> list[str]:
    """The codes of the rules the password fails, in display order (empty: acceptable)."""
    return [rule.code for rule in check_password(password, policy, personal=personal) if not rule.met]


def is_acceptable(password: str, policy: PasswordPolicy, personal: PersonalData | None = None) -> bool:
    return not password_errors(password, policy, personal)
