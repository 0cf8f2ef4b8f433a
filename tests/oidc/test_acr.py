"""Authentication levels asked by relying parties (OIDC Core 3.1.2.1 acr_values, 5.5.1.1 the
essential acr claim), on trusted browsers and new ones."""

from __future__ import annotations

import json

import pytest

from tests.factories import PASSWORD
from tests.flows import csrf_token, query

PWD, OTP, PHR = "urn:mh:acr:pwd", "urn:mh:acr:otp", "urn:mh:acr:phr"


def acr_claim(*values: str, essential: bool = True) -> str:
    spec: dict = {"values": list(values)}
    if essential:
        spec["essential"] = True
    return json.dumps({"id_token": {"acr": spec}})


def _claims(flow, response) -> dict:
    assert response.status_code in (302, 303), response.data[:500]
    tokens = flow.token(query(response.headers["Location"])["code"]).json
    return flow.id_token_claims(tokens["id_token"])


def _trust_this_browser(flow) -> None:
    """Sign in with a code and "remember me": the browser is trusted and signed in."""
    response = flow.login(flow.authorize(), remember=True)
    assert "code" in query(response.headers["Location"])


def _log_out(flow) -> None:
    flow.http.get("/malakoff/logout")
    page = flow.http.get("/malakoff/logout/confirm")
    done = flow.http.post("/malakoff/logout/confirm", data={
        "confirm": "x", "csrf_token": csrf_token(page.data)})
    assert done.status_code == 303
    assert query(flow.authorize(prompt="none").headers["Location"])["error"] == "login_required"


def _password(flow, response):
    """Give the password on the sign-in page the response is."""
    page, interaction = flow.sign_in_page(response)
    return flow.http.post("/malakoff/login", data={
        "interaction": interaction, "identifier": flow.identifier,
        "password": PASSWORD, "csrf_token": csrf_token(page.data)})


# -- essential acr: one of the values asked (OIDC Core 5.5.1.1) -----------------------------------


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        (acr_claim(PWD), PWD),
        (acr_claim(PWD, OTP), OTP),
        (acr_claim(OTP), OTP),
        # Voluntary requests get the level reached (README: pwd < otp < phr).
        (acr_claim(PWD, essential=False), OTP),
    ],
    ids=["essential password", "essential password or code", "essential code", "voluntary password"],
)
def test_acr_is_one_of_the_essential_values_asked(flow, claims, expected):
    response = flow.sign_in(claims=claims)  # a new browser: password and code

    id_token = _claims(flow, response)

    assert id_token["acr"] == expected
    # amr stays what was proven.
    assert id_token["amr"] == ["pwd", "otp", "mail"]


def test_voluntary_acr_values_get_the_level_reached(flow):
    assert _claims(flow, flow.sign_in(acr_values=PWD))["acr"] == OTP


def test_essential_acr_from_the_session_of_a_higher_level(flow):
    flow.code()  # signed in with a code

    response = flow.authorize(prompt="none", claims=acr_claim(PWD))

    assert _claims(flow, response)["acr"] == PWD


def test_essential_acr_that_the_sign_in_did_not_reach_is_a_failed_authentication(flow):
    # Only a passkey reaches it; the member signed in with a code instead.
    response = flow.sign_in(claims=acr_claim(PHR))

    params = query(response.headers["Location"])
    assert params["error"] == "access_denied"
    assert "code" not in params
    assert params["iss"] == "http://localhost/malakoff"


# -- a level asked forces the code, even on a trusted browser (OIDC Core 3.1.2.1) -----------------


@pytest.mark.parametrize(
    "request_params",
    [{"acr_values": OTP}, {"claims": acr_claim(OTP)}, {"claims": acr_claim(OTP, essential=False)},
     {"acr_values": f"{PHR} {OTP}"}],
    ids=["acr_values", "essential claim", "voluntary claim", "passkey or code"],
)
def test_a_level_asked_forces_the_code_on_a_trusted_browser_without_a_session(flow, request_params):
    _trust_this_browser(flow)
    _log_out(flow)

    posted = _password(flow, flow.authorize(**request_params))

    assert posted.headers["Location"].endswith("/malakoff/login/code")
    final = flow.second_factor()
    assert _claims(flow, final)["acr"] == OTP


def test_prompt_login_with_a_level_forces_the_code_on_a_trusted_browser(flow):
    _trust_this_browser(flow)  # and signed in at the code level

    posted = _password(flow, flow.authorize(prompt="login", acr_values=OTP))

    assert posted.headers["Location"].endswith("/malakoff/login/code")
    final = flow.second_factor()
    assert _claims(flow, final)["acr"] == OTP


@pytest.mark.parametrize("request_params", [{}, {"acr_values": PWD}, {"acr_values": f"{PWD} {OTP}"}],
                         ids=["nothing asked", "password asked", "password among others"])
def test_a_trusted_browser_still_skips_the_code_when_the_password_level_is_enough(flow, request_params):
    _trust_this_browser(flow)
    _log_out(flow)

    final = _password(flow, flow.authorize(**request_params))

    id_token = _claims(flow, final)
    assert id_token["acr"] == PWD
    assert id_token["amr"] == ["pwd"]
