"""One-time code challenges (idp.mfa.services.OtpService and idp.mfa.otp), on both stores."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime
from pathlib import Path

import pytest

from idp.mfa import otp
from idp.mfa.services import (
    Challenge,
    OtpExpired,
    OtpInvalid,
    OtpLocked,
    OtpService,
    ResendTooSoon,
)
from idp.store import MemoryStore, RedisStore
from idp.tenancy import MfaPolicy, load_tenants
from tests.conftest import REDIS_URL

ROOT = Path(__file__).resolve().parents[2]
SECRET = b"test-secret-key-of-at-least-32-bytes!"
# Stated here rather than read from config/tenants, so that the numbers below are exact.
POLICY = MfaPolicy(otp_ttl_seconds=180, otp_max_attempts=5, otp_resend_cooldown_seconds=30)
TENANT = dataclasses.replace(
    load_tenants(ROOT / "config" / "tenants", "https://id.example.org")["malakoff"], mfa=POLICY
)
START = 1_700_000_000.0  # 2023-11-14T22:13:20Z


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "redis"])
def store(request, clock):
    if request.param == "memory":
        yield MemoryStore(clock=clock)
        return
    if not REDIS_URL:
        pytest.skip("no IDP_TEST_REDIS_URL: the Redis store is exercised by .ci/run")
    redis_store = RedisStore(REDIS_URL, prefix=f"test:{time.time_ns()}:")
    yield redis_store
    redis_store.client.flushdb()
    redis_store.close()


@pytest.fixture
def service(store, clock) -> OtpService:
    return OtpService(store, SECRET, clock=clock)


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


# -- issue -------------------------------------------------------------------------------------


def test_issue_makes_a_six_digit_code_and_a_challenge_for_the_account(service):
    challenge, code = service.issue(TENANT, "acc-1", "sms")

    assert len(code) == 6 and code.isdigit()
    assert challenge.tenant == "malakoff"
    assert challenge.account_id == "acc-1"
    assert challenge.channel == "sms"
    assert challenge.issued_at == START
    assert challenge.expires_at == START + 180
    assert challenge.valid_until == datetime(2023, 11, 14, 22, 16, 20)
    assert len(challenge.id) == 32  # token_urlsafe(24)


def test_the_code_is_stored_only_as_a_keyed_hash(service, store):
    challenge, code = service.issue(TENANT, "acc-1", "email")

    raw = store.get(f"otp:{challenge.id}")
    assert raw is not None
    assert code not in raw
    stored = json.loads(raw)
    assert stored == dataclasses.asdict(challenge)
    assert stored["digest"] == otp.code_digest(SECRET, challenge.id, code)
    assert len(stored["digest"]) == 64  # HMAC-SHA256, hex
    assert store.ttl(f"otp:{challenge.id}") == 180


def test_each_issue_gives_a_new_challenge(service):
    first, _ = service.issue(TENANT, "acc-1", "sms")
    second, _ = service.issue(TENANT, "acc-2", "sms")

    assert first.id != second.id


def test_an_unknown_channel_is_refused(service):
    with pytest.raises(ValueError, match="unknown channel 'fax'"):
        service.issue(TENANT, "acc-1", "fax")


# -- verify ------------------------------------------------------------------------------------


def test_the_right_code_is_accepted_once(service):
    challenge, code = service.issue(TENANT, "acc-1", "sms")

    service.verify(TENANT, challenge, code)

    with pytest.raises(OtpExpired):
        service.verify(TENANT, challenge, code)


@pytest.mark.parametrize("typed", ["{code}", " {code} ", "{a} {b}", "{a}-{b}"])
def test_spaces_and_a_dash_typed_in_the_code_are_ignored(service, typed):
    challenge, code = service.issue(TENANT, "acc-1", "sms")

    service.verify(TENANT, challenge, typed.format(code=code, a=code[:3], b=code[3:]))


def test_the_code_works_until_its_last_second(service, clock):
    challenge, code = service.issue(TENANT, "acc-1", "sms")
    clock.now = START + 179

    service.verify(TENANT, challenge, code)


def test_the_code_expires_after_its_lifetime(service, clock):
    challenge, code = service.issue(TENANT, "acc-1", "sms")
    clock.now = START + 180

    with pytest.raises(OtpExpired):
        service.verify(TENANT, challenge, code)


def test_wrong_codes_count_down_then_lock_the_challenge(service):
    challenge, code = service.issue(TENANT, "acc-1", "sms")
    wrong = other_code(code)

    remaining = []
    for _ in range(4):
        with pytest.raises(OtpInvalid) as caught:
            service.verify(TENANT, challenge, wrong)
        remaining.append(caught.value.remaining)
    assert remaining == [4, 3, 2, 1]
    assert str(caught.value) == "wrong code, 1 tries left"

    with pytest.raises(OtpLocked):
        service.verify(TENANT, challenge, wrong)  # the fifth wrong code

    # Locked for good, and said so: even the right code needs a new challenge now.
    with pytest.raises(OtpLocked):
        service.verify(TENANT, challenge, code)


def test_the_right_code_on_the_last_try_is_accepted(service):
    challenge, code = service.issue(TENANT, "acc-1", "sms")
    for _ in range(4):
        with pytest.raises(OtpInvalid):
            service.verify(TENANT, challenge, other_code(code))

    service.verify(TENANT, challenge, code)


def test_tries_beyond_the_maximum_lock_even_the_right_code(service, store):
    """Concurrent wrong tries can push the counter past the maximum before the challenge is deleted."""
    challenge, code = service.issue(TENANT, "acc-1", "sms")
    for _ in range(5):
        store.incr(f"otp:{challenge.id}:tries", 180)

    with pytest.raises(OtpLocked):
        service.verify(TENANT, challenge, code)
    assert store.get(f"otp:{challenge.id}") is None


@pytest.mark.parametrize("typed", ["", "12345", "1234567", "12a456", "١٢٣٤٥٦", "12 34 56 7"])
def test_malformed_input_costs_a_try(service, typed):
    challenge, _code = service.issue(TENANT, "acc-1", "sms")

    with pytest.raises(OtpInvalid) as caught:
        service.verify(TENANT, challenge, typed)
    assert caught.value.remaining == 4


# -- binding -----------------------------------------------------------------------------------


def test_a_code_only_opens_its_own_challenge(service):
    mine, my_code = service.issue(TENANT, "acc-1", "sms")
    theirs, their_code = service.issue(TENANT, "acc-2", "sms")
    if my_code == their_code:  # 1 in a million: make the codes differ
        theirs, their_code = service.issue(TENANT, "acc-2", "email")

    with pytest.raises(OtpInvalid):
        service.verify(TENANT, theirs, my_code)
    with pytest.raises(OtpInvalid):
        service.verify(TENANT, mine, their_code)
    service.verify(TENANT, mine, my_code)
    service.verify(TENANT, theirs, their_code)


def test_a_digest_copied_to_another_challenge_does_not_match(service):
    """The digest is keyed by the challenge id: it cannot be moved to another sign-in."""
    mine, my_code = service.issue(TENANT, "acc-1", "sms")
    theirs, _ = service.issue(TENANT, "acc-2", "sms")
    forged = dataclasses.replace(theirs, digest=mine.digest)

    with pytest.raises(OtpInvalid):
        service.verify(TENANT, forged, my_code)


def test_a_challenge_unknown_to_the_store_is_expired(service):
    challenge, code = service.issue(TENANT, "acc-1", "sms")
    made_up = Challenge(id="made-up", tenant="malakoff", account_id="acc-1", channel="sms",
                        digest=otp.code_digest(SECRET, "made-up", code), issued_at=START,
                        expires_at=START + 180)

    with pytest.raises(OtpExpired):
        service.verify(TENANT, made_up, code)
    service.verify(TENANT, challenge, code)


def test_another_server_secret_does_not_match(service, store, clock):
    challenge, code = service.issue(TENANT, "acc-1", "sms")
    elsewhere = OtpService(store, b"another-secret-of-at-least-32-bytes", clock=clock)

    with pytest.raises(OtpInvalid):
        elsewhere.verify(TENANT, challenge, code)


# -- resend ------------------------------------------------------------------------------------


def test_resend_on_the_same_channel_waits_for_the_cooldown(service, clock):
    first, _ = service.issue(TENANT, "acc-1", "sms")

    with pytest.raises(ResendTooSoon) as caught:
        service.issue(TENANT, "acc-1", "sms", previous=first)
    assert caught.value.retry_after == 30
    assert str(caught.value) == "resend in 30s"

    clock.now = START + 9.5
    with pytest.raises(ResendTooSoon) as caught:
        service.issue(TENANT, "acc-1", "sms", previous=first)
    assert caught.value.retry_after == 21  # rounded up

    clock.now = START + 30
    second, _ = service.issue(TENANT, "acc-1", "sms", previous=first)
    assert second.issued_at == START + 30


def test_a_refused_resend_keeps_the_first_code(service, clock):
    first, code = service.issue(TENANT, "acc-1", "sms")
    clock.now = START + 10
    with pytest.raises(ResendTooSoon):
        service.issue(TENANT, "acc-1", "sms", previous=first)

    service.verify(TENANT, first, code)


def test_a_new_code_replaces_the_previous_one(service, clock):
    first, first_code = service.issue(TENANT, "acc-1", "sms")
    clock.now = START + 30

    second, second_code = service.issue(TENANT, "acc-1", "sms", previous=first)

    with pytest.raises(OtpExpired):
        service.verify(TENANT, first, first_code)
    service.verify(TENANT, second, second_code)


def test_another_channel_has_no_cooldown_and_replaces_the_code(service, clock):
    first, first_code = service.issue(TENANT, "acc-1", "sms")
    clock.now = START + 1

    second, second_code = service.issue(TENANT, "acc-1", "email", previous=first)

    assert second.channel == "email"
    assert second.expires_at == START + 1 + 180
    with pytest.raises(OtpExpired):
        service.verify(TENANT, first, first_code)
    service.verify(TENANT, second, second_code)


def test_a_new_code_starts_with_all_its_tries(service, clock):
    first, first_code = service.issue(TENANT, "acc-1", "sms")
    for _ in range(3):
        with pytest.raises(OtpInvalid):
            service.verify(TENANT, first, other_code(first_code))
    clock.now = START + 30

    second, second_code = service.issue(TENANT, "acc-1", "sms", previous=first)

    with pytest.raises(OtpInvalid) as caught:
        service.verify(TENANT, second, other_code(second_code))
    assert caught.value.remaining == 4


# -- the pure helpers (idp.mfa.otp) --------------------------------------------------------------


def test_generated_codes_are_six_digits_including_leading_zeros(monkeypatch):
    monkeypatch.setattr(otp.secrets, "randbelow", lambda bound: 42 if bound == 10**6 else -1)

    assert otp.generate_code() == "000042"


@pytest.mark.parametrize(("raw", "expected"), [
    ("123456", "123456"),
    (" 123 456 ", "123456"),
    ("123-456", "123456"),
    ("12345", None),
    ("1234567", None),
    ("12345a", None),
    ("123.456", None),
    ("١٢٣٤٥٦", None),  # Arabic-Indic digits are digits, but not the ones we sent
])
def test_normalize_code(raw, expected):
    assert otp.normalize_code(raw) == expected
