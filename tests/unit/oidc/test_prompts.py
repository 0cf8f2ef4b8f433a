"""Each prompt check alone, on a plain context: no app, no session, no database."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from idp.accounts.levels import ACR_OTP, ACR_PASSKEY, ACR_PASSWORD, Authentication
from idp.accounts.models import Account
from idp.oidc import prompts
from idp.oidc.prompts import PromptContext, SignedIn

NOW = 1_800_000_000.0
SUBJECT = "5f0c3b8e-0000-4000-8000-000000000001"


def signed_in(acr: str = ACR_PASSWORD, auth_time: float = NOW - 60) -> SignedIn:
    authentication = Authentication(account_id=SUBJECT, auth_time=int(auth_time), amr=["pwd"], acr=acr)
    return SignedIn(authentication, Account(id=SUBJECT))


def context(**changes: Any) -> PromptContext:
    """A signed-in member asking for what they already consented to, then the changes."""
    base = PromptContext(
        signed_in=signed_in(),
        scopes=frozenset({"openid", "profile"}),
        consented_scopes=frozenset({"openid", "profile"}),
        now=NOW,
    )
    return replace(base, **changes)


def acr_claim(spec: dict[str, Any]) -> dict[str, Any]:
    return {"id_token": {"acr": spec}}


@pytest.mark.parametrize(
    ("session", "expected"),
    [(None, "no_session"), (signed_in(), None)],
    ids=["no session", "session"],
)
def test_no_session(session, expected):
    assert prompts.no_session(context(signed_in=session)) == expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"prompt": frozenset({"login"})}, "prompt_login"),
        ({"prompt": frozenset({"login", "consent"})}, "prompt_login"),
        ({"prompt": frozenset()}, None),
        ({"prompt": frozenset({"none"})}, None),
        ({"prompt": frozenset({"login"}), "just_logged_in": True}, None),
        ({"prompt": frozenset({"login"}), "signed_in": None}, None),
    ],
    ids=["login", "login and consent", "absent", "none", "just logged in", "no session"],
)
def test_prompt_login(changes, expected):
    assert prompts.prompt_login(context(**changes)) == expected


@pytest.mark.parametrize(
    ("max_age", "elapsed", "expected"),
    [
        (None, 10_000, None),
        (3600, 3599, None),
        (3600, 3600, None),
        (3600, 3601, "max_age"),
        (0, 0, None),
        (0, 1, "max_age"),
    ],
    ids=["absent", "within", "exactly reached", "exceeded", "zero same second", "zero one second later"],
)
def test_max_age_exceeded(max_age, elapsed, expected):
    checked = context(signed_in=signed_in(auth_time=NOW - elapsed), max_age=max_age)
    assert prompts.max_age_exceeded(checked) == expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    [({"just_logged_in": True}, None), ({"signed_in": None}, None)],
    ids=["just logged in", "no session"],
)
def test_max_age_exemptions(changes, expected):
    checked = context(signed_in=signed_in(auth_time=NOW - 100), max_age=10)
    assert prompts.max_age_exceeded(replace(checked, **changes)) == expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"hint_subject": None}, None),
        ({"hint_subject": SUBJECT}, None),
        ({"hint_subject": "another-member"}, "id_token_hint"),
        # Signing in as someone else does not make the hint name them.
        ({"hint_subject": "another-member", "just_logged_in": True}, "id_token_hint"),
        ({"hint_subject": "another-member", "signed_in": None}, None),
    ],
    ids=["no hint", "same subject", "other subject", "other subject just logged in", "no session"],
)
def test_other_subject(changes, expected):
    assert prompts.other_subject(context(**changes)) == expected


@pytest.mark.parametrize(
    ("achieved", "changes", "expected"),
    [
        (ACR_PASSWORD, {}, None),
        (ACR_PASSWORD, {"acr_values": (ACR_PASSWORD,)}, None),
        (ACR_PASSWORD, {"acr_values": (ACR_OTP,)}, "acr_values"),
        (ACR_OTP, {"acr_values": (ACR_OTP,)}, None),
        (ACR_PASSKEY, {"acr_values": (ACR_OTP,)}, None),
        (ACR_OTP, {"acr_values": (ACR_PASSKEY,)}, "acr_values"),
        # One of the levels asked is enough.
        (ACR_PASSWORD, {"acr_values": (ACR_PASSKEY, ACR_PASSWORD)}, None),
        # Levels the provider does not know are not asked for.
        (ACR_PASSWORD, {"acr_values": ("urn:other:acr",)}, None),
        (ACR_PASSWORD, {"claims": acr_claim({"value": ACR_OTP, "essential": True})}, "acr_values"),
        (ACR_PASSWORD, {"claims": acr_claim({"value": ACR_OTP})}, "acr_values"),
        (ACR_PASSWORD, {"claims": acr_claim({"values": [ACR_OTP], "essential": False})}, "acr_values"),
        (ACR_OTP, {"claims": acr_claim({"values": [ACR_OTP], "essential": True})}, None),
        (ACR_PASSWORD, {"acr_values": (ACR_OTP,), "just_logged_in": True}, None),
        # A sign-in still to come must reach the level too: a trusted browser's password alone
        # does not (OIDC Core 3.1.2.1), so the reason is recorded for the sign-in page.
        (ACR_PASSWORD, {"acr_values": (ACR_OTP,), "signed_in": None}, "acr_values"),
        (ACR_PASSWORD, {"claims": acr_claim({"value": ACR_OTP, "essential": True}), "signed_in": None},
         "acr_values"),
        (ACR_PASSWORD, {"acr_values": (ACR_PASSWORD,), "signed_in": None}, None),
        (ACR_PASSWORD, {"acr_values": (ACR_OTP, ACR_PASSWORD), "signed_in": None}, None),
        (ACR_PASSWORD, {"signed_in": None}, None),
        (ACR_OTP, {"acr_values": (ACR_OTP,), "prompt": frozenset({"login"})}, "acr_values"),
        (ACR_OTP, {"acr_values": (ACR_OTP,), "max_age": 10}, "acr_values"),
        (ACR_OTP, {"acr_values": (ACR_OTP,), "hint_subject": "another-member"}, "acr_values"),
        (ACR_OTP, {"acr_values": (ACR_OTP,), "prompt": frozenset({"login"}), "just_logged_in": True},
         None),
    ],
    ids=[
        "none asked", "password asked", "code asked of a password", "code asked of a code",
        "code asked of a passkey", "passkey asked of a code", "one of several", "unknown level",
        "essential claim", "voluntary claim value", "voluntary claim values", "essential claim met",
        "just logged in", "no session", "no session, essential claim", "no session, password asked",
        "no session, password among others", "no session, none asked", "prompt=login above a code",
        "max_age above a code", "another subject above a code", "prompt=login done",
    ],
)
def test_acr_not_met(achieved, changes, expected):
    checked = context(signed_in=signed_in(acr=achieved, auth_time=NOW - 100))
    assert prompts.acr_not_met(replace(checked, **changes)) == expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"consented_scopes": None}, "consent"),
        ({"consented_scopes": frozenset({"openid", "profile"})}, None),
        ({"consented_scopes": frozenset({"openid", "profile", "email"})}, None),
        ({"consented_scopes": frozenset({"openid"})}, "consent"),
        ({"consented_scopes": frozenset()}, "consent"),
        ({"consented_scopes": None, "first_party": True}, None),
        ({"consented_scopes": frozenset({"openid"}), "first_party": True}, None),
        # Consent is stored by the consent page: having just been there is not enough.
        ({"consented_scopes": None, "just_consented": True}, "consent"),
        # Claims asked by name (OIDC Core 5.5) need the member's consent like scopes.
        ({"claim_names": frozenset({"phone_number"})}, "consent"),
        ({"claim_names": frozenset({"given_name", "birthdate"})}, None),
        ({"claim_names": frozenset({"phone_number"}), "consented_claims": frozenset({"phone_number"})},
         None),
        ({"claim_names": frozenset({"phone_number", "email"}),
          "consented_claims": frozenset({"phone_number"})}, "consent"),
        ({"claim_names": frozenset({"phone_number"}), "first_party": True}, None),
    ],
    ids=[
        "never consented", "same scopes", "consented to more", "asks for more", "consented to none",
        "first party never asked", "first party asking for more", "just consented but not stored",
        "claim never consented", "claims of a consented scope", "claim consented", "one claim more",
        "first party asking claims",
    ],
)
def test_consent_missing(changes, expected):
    assert prompts.consent_missing(context(**changes)) == expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"prompt": frozenset({"consent"})}, "consent"),
        ({"prompt": frozenset({"login", "consent"})}, "consent"),
        ({"prompt": frozenset()}, None),
        ({"prompt": frozenset({"consent"}), "just_consented": True}, None),
        ({"prompt": frozenset({"consent"}), "first_party": True}, None),
        # Logging in is not consenting.
        ({"prompt": frozenset({"consent"}), "just_logged_in": True}, "consent"),
    ],
    ids=["consent", "login and consent", "absent", "just consented", "first party", "just logged in"],
)
def test_prompt_consent(changes, expected):
    assert prompts.prompt_consent(context(**changes)) == expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        ({"signed_in": None, "prompt": frozenset({"login"}), "max_age": 0}, ["no_session"]),
        (
            {"prompt": frozenset({"login"}), "max_age": 10, "hint_subject": "another-member",
             "acr_values": (ACR_OTP,)},
            ["prompt_login", "max_age", "id_token_hint", "acr_values"],
        ),
        (
            {"prompt": frozenset({"login"}), "max_age": 10, "hint_subject": "another-member",
             "acr_values": (ACR_OTP,), "just_logged_in": True},
            ["id_token_hint"],
        ),
    ],
    ids=["nothing to ask", "no session only", "all, in order", "just logged in"],
)
def test_login_reasons_in_order(changes, expected):
    checked = context(signed_in=signed_in(auth_time=NOW - 100))
    assert prompts.reasons(prompts.LOGIN_CHECKS, replace(checked, **changes)) == expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        ({"consented_scopes": None}, ["consent"]),
        ({"consented_scopes": None, "prompt": frozenset({"consent"})}, ["consent"]),
        ({"prompt": frozenset({"consent"})}, ["consent"]),
    ],
    ids=["consented", "never consented", "never consented and asked again", "asked again"],
)
def test_consent_reasons_are_recorded_once(changes, expected):
    assert prompts.reasons(prompts.CONSENT_CHECKS, context(**changes)) == expected


@pytest.mark.parametrize(
    ("acr_values", "login_reasons", "expected"),
    [
        ((ACR_OTP,), ["acr_values"], "step_up"),
        ((ACR_PASSWORD,), ["acr_values"], "step_up"),
        # Only a passkey reaches it: the sign-in page offers one.
        ((ACR_PASSKEY,), ["acr_values"], "login"),
        ((ACR_PASSKEY, ACR_OTP), ["acr_values"], "step_up"),
        ((ACR_OTP,), ["max_age", "acr_values"], "login"),
        ((ACR_OTP,), ["id_token_hint", "acr_values"], "login"),
        ((), ["prompt_login"], "login"),
        ((), ["no_session"], "login"),
    ],
    ids=[
        "code reaches it", "password level", "passkey only", "passkey or code", "with max_age",
        "with another subject", "prompt=login", "no session",
    ],
)
def test_login_prompt(acr_values, login_reasons, expected):
    assert prompts.login_prompt(context(acr_values=acr_values), login_reasons) == expected


@pytest.mark.parametrize(
    ("achieved", "claims", "expected"),
    [
        (ACR_OTP, None, ACR_OTP),
        # Voluntary requests get the level reached, even above the one asked.
        (ACR_OTP, acr_claim({"values": [ACR_PASSWORD]}), ACR_OTP),
        (ACR_OTP, acr_claim({"values": [ACR_PASSWORD], "essential": False}), ACR_OTP),
        # Essential: one of the values asked (OIDC Core 5.5.1.1), the highest the sign-in meets.
        (ACR_OTP, acr_claim({"values": [ACR_PASSWORD], "essential": True}), ACR_PASSWORD),
        (ACR_OTP, acr_claim({"value": ACR_PASSWORD, "essential": True}), ACR_PASSWORD),
        (ACR_PASSKEY, acr_claim({"values": [ACR_PASSWORD, ACR_OTP], "essential": True}), ACR_OTP),
        (ACR_OTP, acr_claim({"values": [ACR_OTP, ACR_PASSWORD], "essential": True}), ACR_OTP),
        (ACR_PASSWORD, acr_claim({"values": [ACR_OTP], "essential": True}), None),
        (ACR_OTP, acr_claim({"values": ["urn:other:acr"], "essential": True}), None),
        (ACR_OTP, acr_claim({"essential": True}), ACR_OTP),
    ],
    ids=["nothing asked", "voluntary below", "voluntary, essential false", "essential below",
         "essential value below", "highest met", "reached exactly", "not met", "unknown level",
         "essential without values"],
)
def test_granted_acr(achieved, claims, expected):
    assert prompts.granted_acr(achieved, claims) == expected
