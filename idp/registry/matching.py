"""Identity matching: does a registration request match the insurer's records? (SPEC §2, §3.3)

The member types a key (member number at Malakoff, NIR at Miel), names and a
birth date; this module finds the record under that key in the tenant and
says how well the rest agrees. No Flask: the caller passes its database
session and tenant, and turns the outcome into a page.

Outcomes (``MatchResult.outcome``):

``match``
    Key, birth date and both names agree (after ``normalize_name``).
``near_miss``
    Key and birth date agree, and exactly one name differs a little (a typo,
    or only part of a composed name typed), or the two names were swapped.
    Neither accepted nor rejected: the caller files it for manual review;
    ``differences`` names the fields a reviewer should look at.
``miss``
    Anything else: no record, another birth date, names too far apart. The
    result carries no member and no differences, so nothing built from it can
    tell the member which field was wrong, or that a record exists (SPEC §2).
``beneficiary`` / ``terminated``
    The identity matched or near-missed, but the record cannot register: a
    beneficiary is covered by the principal's account, a terminated record by
    no account. Only decided once the identity agreed, so these never reveal a
    record to someone who merely knows a number. ``member`` and
    ``differences`` are kept (a near-missed one may still deserve a look).
    ``terminated`` is checked first: a terminated beneficiary is not covered
    by anyone's account, so "your principal's account covers you" would be
    wrong.

Name rules, in order (each name is compared on its *compact* form: the
normalized words joined without separators, so "Jean-Pierre", "jean pierre",
"JEANPIERRE" and "D'Artagnan"/"DARTAGNAN" are all equal):

1. Both names equal → match.
2. First and last name swapped, each equal to the other field → near_miss
   with both fields. Deliberately not a match: the information is all there,
   but "match" means "what was typed is what is on file", so callers may use
   the typed names; a reviewer sees a swap at a glance.
3. One name equal, the other a small spelling difference: Damerau-Levenshtein
   (optimal string alignment) distance ≤ 2 when both forms have at least 6
   letters, ≤ 1 otherwise. The shorter of the two lengths decides, so "Marc"
   typed for "Marcel" (distance 2, 4 letters) is a miss, not a typo.
4. One name equal, the other a part of a composed name: the typed words are a
   contiguous run of the record's words or the other way round ("Jean" for
   "Jean-Pierre", "DUPONT" for "DUPONT-MOREL", "Marie-Claire" typed where the
   record holds "Marie") → near_miss, never a match: "Jean" and "Jean-Pierre"
   may be two brothers. The shared part must have at least 2 letters, so the
   lone "d" of "D'Artagnan" is not a part.
5. Anything further (both names differ, a bigger difference) → miss.

The distance function is written here rather than taken from ``rapidfuzz``:
it is a dozen lines, runs once or twice per registration on names of at most
100 characters, and saves a compiled dependency. It is the *optimal string
alignment* variant (each substring edited once), which never returns less than
unrestricted Damerau-Levenshtein: it only errs on the side of a miss, and the
two agree on every one- or two-edit case that matters here (substitution,
insertion, deletion, adjacent transposition).

Several records under one NIR: a beneficiary may be registered under the
principal's NIR (historically, children's cover was attached to a parent's
number), so a NIR can find several records. Each one is matched; the best
name agreement wins (match before near_miss), then the principal, then the
active record, then the lowest member number so the answer is stable. A
mother typing her names finds her principal record; her child typing theirs
(and their own birth date) finds the beneficiary record.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp import events, ratelimit
from idp.identifiers import InvalidIdentifier, normalize_email, parse_member_number, parse_mobile
from idp.ratelimit import Limit, RateLimiter, TooManyAttempts
from idp.registry.models import Member
from idp.registry.nir import normalize_nir
from idp.store import Store
from idp.tenancy import Tenant

MATCH = "match"
NEAR_MISS = "near_miss"
MISS = "miss"
BENEFICIARY = "beneficiary"
TERMINATED = "terminated"
OUTCOMES = (MATCH, NEAR_MISS, MISS, BENEFICIARY, TERMINATED)

FIRST_NAME = "first_name"
LAST_NAME = "last_name"

# Names this long (in letters, on both sides) may differ by two edits; shorter ones by one.
LONG_NAME = 6
LONG_NAME_EDITS = 2
SHORT_NAME_EDITS = 1
# A part of a composed name must have at least this many letters to count.
MIN_PART_LETTERS = 2

# Letters that NFKD leaves whole; ß is handled by casefold().
_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "ı": "i"})
# Anything that is not a letter or digit separates words: hyphens, apostrophes (' and ’),
# spaces (also non-breaking), dots, commas…
_SEPARATORS = re.compile(r"[\W_]+")


@dataclass
class MatchResult:
    """How a registration request compares with the registry (see the module docstring)."""

    outcome: str  # one of OUTCOMES
    member: Member | None = None
    differences: list[str] = field(default_factory=list)  # FIRST_NAME / LAST_NAME, for reviewers


def normalize_name(value: str) -> str:
    """A name as compared: lowercase, no accents, words separated by one space.

    "Jean-Pierre", "jean  pierre" and "JEAN PIERRE" give "jean pierre"; "Étienne"
    gives "etienne"; "D'Artagnan" and "d’Artagnan" give "d artagnan"; "Œuvrard"
    gives "oeuvrard", "Strauß" "strauss".
    """
    decomposed = unicodedata.normalize("NFKD", value.casefold().translate(_LIGATURES))
    letters = "".join(char for char in decomposed if not unicodedata.combining(char))
    # A precomposed letter such as "ǽ" only becomes "æ" once its accent is split off.
    letters = letters.translate(_LIGATURES)
    return " ".join(word for word in _SEPARATORS.split(letters) if word)


def match_by_member_number(
    session: Session,
    tenant: Tenant,
    member_number: str,
    first_name: str,
    last_name: str,
    birth_date: date,
) -> MatchResult:
    """Match a Malakoff-style request keyed on the 8-digit member number (SPEC §3.1)."""
    try:
        number = parse_member_number(member_number)
    except InvalidIdentifier:
        return MatchResult(MISS)
    member = session.scalar(
        select(Member).where(Member.tenant == tenant.slug, Member.member_number == number)
    )
    return _best([member] if member is not None else [], first_name, last_name, birth_date)


def match_by_nir(
    session: Session,
    tenant: Tenant,
    nir: str,
    first_name: str,
    last_name: str,
    birth_date: date,
) -> MatchResult:
    """Match a Miel-style request keyed on the NIR (SPEC §3.2); the form validated the NIR.

    Spaces and case in ``nir`` do not matter. Several records may share a NIR:
    see the module docstring for which one wins.
    """
    members = session.scalars(
        select(Member)
        .where(Member.tenant == tenant.slug, Member.nir == normalize_nir(nir))
        .order_by(Member.member_number)
    ).all()
    return _best(list(members), first_name, last_name, birth_date)


class IdentityChecks:
    """Identity matches limited per key typed, member number or NIR (SPEC §3.3).

    A member number or a NIR is printed on cards and payslips; names and a birth date
    can be guessed. So failed matches are counted per key, whichever addresses they come
    from (``MATCH_PER_MEMBER_NUMBER``, ``MATCH_PER_NIR``): past the limit the key answers
    ``miss`` for the rest of the window, even to the right names and birth date, so the
    answer tells a guesser nothing, and an audit event (``REGISTRATION_LIMITED``) tells
    operators. Each check is counted before it is made (parallel guesses cannot slip
    through between a check and its count) and given back when the identity agreed.
    """

    def __init__(self, db: Session, store: Store, tenant: Tenant):
        self.db = db
        self.store = store
        self.tenant = tenant

    def by_member_number(self, member_number: str, first_name: str, last_name: str,
                         birth_date: date, *, ip: str | None = None) -> MatchResult:
        try:
            key = parse_member_number(member_number)
        except InvalidIdentifier:
            return MatchResult(MISS)
        return self._limited(ratelimit.MATCH_PER_MEMBER_NUMBER, key, ip, lambda: match_by_member_number(
            self.db, self.tenant, key, first_name, last_name, birth_date))

    def by_nir(self, nir: str, first_name: str, last_name: str, birth_date: date, *,
               ip: str | None = None) -> MatchResult:
        return self._limited(ratelimit.MATCH_PER_NIR, normalize_nir(nir), ip, lambda: match_by_nir(
            self.db, self.tenant, nir, first_name, last_name, birth_date))

    def _limited(self, limit: Limit, key: str, ip: str | None, match) -> MatchResult:
        limiter = RateLimiter(self.store, limit)
        subject = f"{self.tenant.slug}:{key}"
        try:
            limiter.consume(subject)
        except TooManyAttempts:
            # Which key is not recorded: it is personal data (a NIR), and the limit's name
            # says which kind was guessed at.
            events.record_event(self.db, events.REGISTRATION_LIMITED, tenant=self.tenant.slug,
                                ip=ip, limit=limit.name)
            return MatchResult(MISS)
        result = match()
        if result.outcome != MISS:
            limiter.refund(subject)
        return result


def contact_matches(member: Member, email: str | None, mobile: str | None) -> bool:
    """Whether the entered email and mobile agree with those on file (SPEC §3.3).

    Only what the registry holds is checked: an email on file must equal the
    entered one (trimmed, lowercased), a mobile on file the entered one (both
    read as mobile numbers, French unless they start with +, and compared in
    E.164). Nothing on file accepts anything. ``False`` sends the request to
    manual review; it is not a reason to reject it.
    """
    if member.email and normalize_email(member.email) != normalize_email(email or ""):
        return False
    return not member.mobile or same_mobile(member.mobile, mobile or "")


# -- internals -------------------------------------------------------------------

_RANK = {MATCH: 0, NEAR_MISS: 1}


def _best(members: list[Member], first_name: str, last_name: str, birth_date: date) -> MatchResult:
    typed = (_words(first_name), _words(last_name))
    candidates = []
    for member in members:
        if member.birth_date != birth_date:
            continue  # a near-miss needs key AND birth date to agree
        outcome, differences = _compare_names(typed, member)
        if outcome == MISS:
            continue
        rank = (_RANK[outcome], member.role != "principal", member.status != "active",
                member.member_number)
        candidates.append((rank, outcome, member, differences))
    if not candidates:
        return MatchResult(MISS)
    _rank, outcome, member, differences = min(candidates, key=lambda candidate: candidate[0])
    if member.status == "terminated":
        outcome = TERMINATED
    elif member.role == "beneficiary":
        outcome = BENEFICIARY
    return MatchResult(outcome, member, differences)


def _words(value: str | None) -> tuple[str, ...]:
    return tuple(normalize_name(value or "").split())


def _compare_names(typed: tuple[tuple[str, ...], tuple[str, ...]], member: Member) -> tuple[str, list[str]]:
    first, last = typed
    if not first or not last:
        return MISS, []
    on_file = (_words(member.first_name), _words(member.last_name))
    same = [_compact(typed_words) == _compact(file_words)
            for typed_words, file_words in zip(typed, on_file, strict=True)]
    if all(same):
        return MATCH, []
    if _compact(first) == _compact(on_file[1]) and _compact(last) == _compact(on_file[0]):
        return NEAR_MISS, [FIRST_NAME, LAST_NAME]
    if same.count(True) != 1:
        return MISS, []
    index = same.index(False)
    typed_words, file_words = typed[index], on_file[index]
    if _close(_compact(typed_words), _compact(file_words)) or _part_of(typed_words, file_words):
        return NEAR_MISS, [(FIRST_NAME, LAST_NAME)[index]]
    return MISS, []


def _compact(words: tuple[str, ...]) -> str:
    return "".join(words)


def _close(typed: str, on_file: str) -> bool:
    """One small spelling difference: a typo-sized edit distance for the name's length."""
    shorter = min(len(typed), len(on_file))
    limit = LONG_NAME_EDITS if shorter >= LONG_NAME else SHORT_NAME_EDITS
    if abs(len(typed) - len(on_file)) > limit:
        return False  # cheap early exit: the distance is at least the length difference
    return osa_distance(typed, on_file) <= limit


def _part_of(typed: tuple[str, ...], on_file: tuple[str, ...]) -> bool:
    """One side's words are a contiguous run of the other's ("jean" in "jean pierre")."""
    shorter, longer = sorted((typed, on_file), key=len)
    if len(shorter) == len(longer) or len(_compact(shorter)) < MIN_PART_LETTERS:
        return False
    size = len(shorter)
    return any(longer[start:start + size] == shorter for start in range(len(longer) - size + 1))


def osa_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein distance, optimal string alignment variant.

    Insertions, deletions, substitutions and transpositions of two adjacent
    characters each cost 1 ("dupont"/"dupotn" is 1, not 2).
    """
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[len(b)]


def same_mobile(on_file: str, typed: str) -> bool:
    """Whether two numbers are the same mobile (both read as mobiles, compared in E.164)."""
    # Both were read as mobiles on their way in (page, import); one that is not agrees with
    # nothing, which sends the request to a person rather than guessing.
    try:
        return parse_mobile(on_file) == parse_mobile(typed)
    except InvalidIdentifier:
        return False
