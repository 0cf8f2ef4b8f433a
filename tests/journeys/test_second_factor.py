"""Second factor after the password: codes by email and SMS, expiry, tries, resend, switch,
trusted devices, step-up and the honest acr/amr (SPEC §5)."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from datetime import datetime

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session as OrmSession

from idp.accounts.models import Account
from idp.channels.models import Message
from idp.db import utcnow
from idp.mfa.models import TrustedDevice
from tests.flows import Flow, csrf_token, query


@pytest.fixture(params=["malakoff", "miel"])
def member_flow(request, client, make):
    tenant = request.param
    extra = {"email": f"adherent.{tenant}@example.org"} if tenant == "miel" else {}
    return Flow(client, tenant, make.client(tenant), make.account(tenant, **extra))


def _password(flow):
    return flow.give_password()


def _send(flow, channel):
    choose = flow.http.get(f"/{flow.tenant}/login/code")
    return flow.http.post(f"/{flow.tenant}/login/code",
                          data={"channel": channel, "csrf_token": csrf_token(choose.data)})


def _enter(flow, code, remember=False):
    page = flow.http.get(f"/{flow.tenant}/login/code/verify")
    data = {"code": code, "csrf_token": csrf_token(page.data)}
    if remember:
        data["remember"] = "y"
    return flow.http.post(f"/{flow.tenant}/login/code/verify", data=data)


def _claims_after(flow, response):
    tokens = flow.token(query(response.headers["Location"])["code"]).json
    return flow.id_token_claims(tokens["id_token"])


@pytest.mark.parametrize("channel", ["email", "sms"])
def test_password_then_code_signs_in_with_honest_amr(member_flow, channel):
    assert _password(member_flow).headers["Location"].endswith(f"/{member_flow.tenant}/login/code")
    assert _send(member_flow, channel).status_code == 303
    response = _enter(member_flow, member_flow.last_code(channel))
    claims = _claims_after(member_flow, response)
    assert claims["acr"] == "urn:mh:acr:otp"
    assert claims["amr"] == ["pwd", "otp", "mail" if channel == "email" else "sms"]


def test_the_code_page_masks_the_destinations(flow):
    _password(flow)
    page = flow.http.get("/malakoff/login/code").data.decode()
    # Whole on one line, even on a narrow screen: its groups are joined by no-break spaces.
    assert "+33\u00a06\u00a0••\u00a0••\u00a0••\u00a088" in page
    assert "j••••@example.org" in page
    assert "0612345688" not in page and "+33612345688" not in page


def test_code_input_helps_phones_and_password_managers(flow):
    _password(flow)
    _send(flow, "email")
    page = flow.http.get("/malakoff/login/code/verify").data.decode()
    assert 'autocomplete="one-time-code"' in page and 'inputmode="numeric"' in page


def test_messages_say_validity_and_never_by_phone(flow, db):

    _password(flow)
    _send(flow, "sms")
    page = flow.http.get("/malakoff/login/code/verify")
    flow.http.post("/malakoff/login/code/send", data={"channel": "email",
                                                       "csrf_token": csrf_token(page.data)})
    sms, email = db.scalars(select(Message).where(Message.template == "otp_code")
                            .order_by(Message.id)).all()
    assert sms.channel == "sms" and "3 min" in sms.body_text
    assert email.channel == "email" and "3\u00a0minutes" in email.body_text
    assert "téléphone" in email.body_text and "mot de passe" in email.body_text


def test_a_code_expires_after_three_minutes(flow, monkeypatch):
    _password(flow)
    _send(flow, "email")
    code = flow.last_code()
    later = time.time() + 181
    monkeypatch.setattr(time, "time", lambda: later)
    response = _enter(flow, code)
    assert response.status_code == 400
    assert "Ce code a expiré".encode() in response.data


def test_a_code_is_single_use(flow, app):
    _password(flow)
    _send(flow, "email")
    code = flow.last_code()
    assert _enter(flow, code).status_code == 303
    # Replaying the same code in another browser's pending sign-in fails: it is bound to its challenge.
    other = Flow(app.test_client(), "malakoff", flow.rp, flow.account)
    _password(other)
    _send(other, "email")
    assert _enter(other, code).status_code == 400 or code == other.last_code()


@pytest.mark.parametrize("typed", ["12ab56", "12345", "1234567", "123 45", "１２３４５６"])
def test_what_cannot_be_a_code_is_told_and_spends_no_try(flow, typed):
    _password(flow)
    _send(flow, "email")
    code = flow.last_code()
    wrong = "000000" if code != "000000" else "111111"

    for _ in range(6):
        response = _enter(flow, typed)
        assert response.status_code == 400
        assert "Le code comporte 6\u00a0chiffres." in response.get_data(as_text=True)
        assert b"Code incorrect" not in response.data
    assert b"Code incorrect. Il vous reste 4 essais." in _enter(flow, wrong).data

    assert _enter(flow, code).status_code == 303


def test_the_sixth_try_is_refused_even_with_the_right_code(flow):
    _password(flow)
    _send(flow, "email")
    code = flow.last_code()
    wrong = "000000" if code != "000000" else "111111"
    messages = []
    for _ in range(5):
        response = _enter(flow, wrong)
        assert response.status_code == 400
        messages.append(response.data)
    assert b"Code incorrect. Il vous reste 4 essais." in messages[0]
    assert b"Code incorrect. Il vous reste 1 essai." in messages[3]
    assert b"Trop de codes incorrects" in messages[-1]
    response = _enter(flow, code)
    assert response.status_code == 400
    # Said as what it is: too many tries, not an expired code.
    assert b"Trop de codes incorrects" in response.data


def _outbox_size(app) -> int:
    session = app.extensions["idp"].database.session()
    try:
        return session.scalar(select(func.count()).select_from(Message))
    finally:
        session.close()


def test_resend_has_a_cooldown_and_replaces_the_code(flow, monkeypatch):
    _password(flow)
    _send(flow, "email")
    first = flow.last_code()
    page = flow.http.get("/malakoff/login/code/verify")
    too_soon = flow.http.post("/malakoff/login/code/send",
                              data={"channel": "email", "csrf_token": csrf_token(page.data)})
    assert too_soon.status_code == 429
    assert b"secondes" in too_soon.data
    later = time.time() + 31
    monkeypatch.setattr(time, "time", lambda: later)
    again = flow.http.post("/malakoff/login/code/send",
                           data={"channel": "email", "csrf_token": csrf_token(page.data)})
    assert again.status_code == 303
    second = flow.last_code()
    if second != first:
        assert _enter(flow, first).status_code == 400
    assert _enter(flow, second).status_code == 303


@pytest.mark.parametrize("asked_from", ["/malakoff/login/code/send", "/malakoff/login/code"],
                         ids=["resend", "channel-chosen-again"])
def test_a_new_code_asked_too_soon_leaves_the_code_page_usable(flow, app, monkeypatch, asked_from):
    clock = [time.time()]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    _password(flow)
    _send(flow, "email")
    code = flow.last_code()
    sent = _outbox_size(app)
    page = flow.http.get("/malakoff/login/code/verify")
    clock[0] += 5
    too_soon = flow.http.post(asked_from, data={"channel": "email", "csrf_token": csrf_token(page.data)})
    assert too_soon.status_code == 429 and too_soon.headers["Retry-After"] == "25"
    # The code page, saying when a new code may come; not an error page.
    assert "Vous pourrez en demander un nouveau dans 25\u00a0secondes.".encode() in too_soon.data
    assert b'role="status"' in too_soon.data
    assert b'<h1>Saisissez votre code</h1>' in too_soon.data
    sent_to = "Nous avons envoyé un code à 6\u00a0chiffres par e-mail à j••••@example.org."
    assert sent_to.encode() in too_soon.data
    assert b'action="/malakoff/login/code/verify"' in too_soon.data
    assert b'id="resend-code"' in too_soon.data
    # Nothing sent, no try spent: its form takes the code sent, with all its tries.
    assert _outbox_size(app) == sent
    wrong = "000000" if code != "000000" else "111111"
    entered = flow.http.post("/malakoff/login/code/verify",
                             data={"code": wrong, "csrf_token": csrf_token(too_soon.data)})
    assert b"Code incorrect. Il vous reste 4 essais." in entered.data
    assert _enter(flow, code).status_code == 303


def test_a_new_code_sent_from_the_code_page_is_confirmed_there(flow, monkeypatch):
    _password(flow)
    _send(flow, "email")
    page = flow.http.get("/malakoff/login/code/verify")
    assert b"Un nouveau code" not in page.data
    later = time.time() + 31
    monkeypatch.setattr(time, "time", lambda: later)
    again = flow.http.post("/malakoff/login/code/send",
                           data={"channel": "email", "csrf_token": csrf_token(page.data)})
    shown = flow.http.get(again.headers["Location"])
    assert "Un nouveau code vous a été envoyé par e-mail à j••••@example.org.".encode() in shown.data
    switched = flow.http.post("/malakoff/login/code/send",
                              data={"channel": "sms", "csrf_token": csrf_token(shown.data)})
    shown = flow.http.get(switched.headers["Location"])
    assert "Un nouveau code vous a été envoyé par SMS au +33\u00a06".encode() in shown.data


def test_switching_channel_sends_a_code_by_the_other_way(flow):
    _password(flow)
    _send(flow, "email")
    page = flow.http.get("/malakoff/login/code/verify")
    assert b"Je demande un code par SMS" in page.data
    switched = flow.http.post("/malakoff/login/code/send",
                              data={"channel": "sms", "csrf_token": csrf_token(page.data)})
    assert switched.status_code == 303
    response = _enter(flow, flow.last_code("sms"))
    assert _claims_after(flow, response)["amr"] == ["pwd", "otp", "sms"]


@pytest.mark.parametrize(("first", "then", "said"), [
    ("email", "sms", "Ce code a été remplacé par celui envoyé par SMS."),
    ("sms", "email", "Ce code a été remplacé par celui envoyé par e-mail."),
])
def test_the_code_of_the_channel_left_is_said_replaced_and_spends_a_try(flow, first, then, said):
    _password(flow)
    _send(flow, first)
    replaced = flow.last_code(first)
    page = flow.http.get("/malakoff/login/code/verify")
    flow.http.post("/malakoff/login/code/send", data={"channel": then, "csrf_token": csrf_token(page.data)})
    newest = flow.last_code(then)
    if replaced == newest:
        pytest.skip("both codes drawn alike")
    response = _enter(flow, replaced)
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert f"{said} Saisissez le dernier code reçu. Il vous reste 4 essais." in text
    assert "Code incorrect" not in text
    wrong = next(code for code in ("000000", "111111", "222222") if code not in (replaced, newest))
    assert b"Code incorrect. Il vous reste 3 essais." in _enter(flow, wrong).data
    claims = _claims_after(flow, _enter(flow, newest))
    assert claims["amr"] == ["pwd", "otp", "mail" if then == "email" else "sms"]


def test_remember_me_skips_the_code_on_this_browser_only(flow, app):
    _password(flow)
    _send(flow, "email")
    _enter(flow, flow.last_code(), remember=True)
    cookie = flow.http.get_cookie("__Host-idp-device-malakoff")
    assert cookie is not None and cookie.secure and cookie.http_only and cookie.same_site == "Strict"
    assert cookie.expires is not None

    # Same browser, new sign-in: no code asked; honest level: password only.
    response = flow.login(flow.authorize(prompt="login"))
    claims = flow.id_token_claims(flow.token(query(response.headers["Location"])["code"]).json["id_token"])
    assert claims["amr"] == ["pwd"] and claims["acr"] == "urn:mh:acr:pwd"

    # Another browser is asked for a code.
    other = Flow(app.test_client(), "malakoff", flow.rp, flow.account)
    assert _password(other).headers["Location"].endswith("/malakoff/login/code")


def test_a_revoked_trusted_device_asks_for_a_code_again(flow, db):
    _password(flow)
    _send(flow, "email")
    _enter(flow, flow.last_code(), remember=True)

    db.execute(update(TrustedDevice).values(revoked_at=utcnow()))
    db.commit()
    flow.authorize(prompt="login")
    assert _password(flow).headers["Location"].endswith("/malakoff/login/code")


def test_a_trusted_device_is_marked_used_until_its_record_expires(flow, db):
    _password(flow)
    _send(flow, "email")
    _enter(flow, flow.last_code(), remember=True)
    long_ago = utcnow().replace(year=2020)
    db.execute(update(TrustedDevice).values(last_used_at=long_ago))
    db.commit()

    flow.login(flow.authorize(prompt="login"))  # no code asked
    assert db.scalar(select(TrustedDevice.last_used_at)) > long_ago

    # The record's end, not only the cookie's, ends the trust.
    db.execute(update(TrustedDevice).values(expires_at=utcnow(), last_used_at=long_ago))
    db.commit()
    flow.authorize(prompt="login")
    assert _password(flow).headers["Location"].endswith("/malakoff/login/code")
    assert db.scalar(select(TrustedDevice.last_used_at)) == long_ago


def test_a_tampered_or_foreign_device_cookie_is_ignored(flow, make, app):
    _password(flow)
    _send(flow, "email")
    _enter(flow, flow.last_code(), remember=True)
    cookie = flow.http.get_cookie("__Host-idp-device-malakoff").value
    # Another account in another browser presenting this cookie still needs a code.
    other = Flow(app.test_client(), "malakoff", flow.rp, make.account())
    other.http.set_cookie("__Host-idp-device-malakoff", cookie, domain="localhost")
    assert _password(other).headers["Location"].endswith("/malakoff/login/code")
    # A tampered cookie on the member's own browser is refused.
    flow.http.set_cookie("__Host-idp-device-malakoff", cookie[:-2] + "xx", domain="localhost")
    assert _password(flow).headers["Location"].endswith("/malakoff/login/code")


def test_step_up_on_a_trusted_device_asks_a_code_and_reports_the_level(flow):
    _password(flow)
    _send(flow, "email")
    _enter(flow, flow.last_code(), remember=True)
    # Signed in at the password level from the trusted device.
    response = flow.login(flow.authorize(prompt="login"))
    assert "code" in query(response.headers["Location"])

    stepped = flow.authorize(acr_values="urn:mh:acr:otp")
    assert "/malakoff/login/step-up?interaction=" in stepped.headers["Location"]
    choose = flow.http.get(stepped.headers["Location"])
    assert choose.headers["Location"].endswith("/malakoff/login/code")
    _send(flow, "email")
    response = _enter(flow, flow.last_code())
    claims = _claims_after(flow, response)
    assert claims["acr"] == "urn:mh:acr:otp"


def test_max_age_asks_a_fresh_code_even_on_a_trusted_device(flow, monkeypatch):
    _password(flow)
    _send(flow, "email")
    _enter(flow, flow.last_code(), remember=True)
    later = time.time() + 60
    monkeypatch.setattr(time, "time", lambda: later)
    assert b'name="password"' in flow.authorize(max_age="10").data
    posted = flow.give_password(prompt=None, max_age="10")
    assert posted.headers["Location"].endswith("/malakoff/login/code")


def test_prompt_none_step_up_answers_login_required(flow):
    flow.code()
    params = query(flow.authorize(prompt="none", acr_values="urn:mh:acr:phr").headers["Location"])
    assert params["error"] == "login_required"


def test_the_code_page_without_a_pending_sign_in_starts_over(client):
    response = client.get("/malakoff/login/code")
    assert response.status_code == 400
    assert client.get("/malakoff/login/code/verify").status_code == 400


def test_a_new_browser_gets_a_notification_email_once_in_words_but_not_the_first_sign_in(app, flow, db):
    flow.code()  # the account's very first sign-in: every browser is new then
    flow.code(prompt="login")
    assert db.scalars(select(Message).where(Message.template == "new_device")).all() == []

    phone = Flow(app.test_client(), "malakoff", flow.rp, flow.account)
    phone.http.environ_base["HTTP_USER_AGENT"] = (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0.0.0 Mobile Safari/537.36")
    phone.code()
    phone.code(prompt="login")
    db.expire_all()
    notices = db.scalars(select(Message).where(Message.template == "new_device")).all()
    assert len(notices) == 1
    assert notices[0].recipient == flow.account.email
    assert "Chrome sur Android" in notices[0].body_text


def test_repeated_wrong_passwords_lock_sign_in_for_known_and_unknown_identifiers(flow):
    for identifier in (flow.identifier, "nobody@example.org"):
        statuses = []
        for _ in range(5):
            response = flow.login(flow.authorize(), identifier=identifier, password="wrong")
            statuses.append(response.status_code)
        assert statuses[:4] == [401] * 4
        assert statuses[4] == 429
        assert "réinitialisez votre mot de passe".encode() in response.data
        # Even the right password is refused while locked.
        locked = flow.login(flow.authorize(), identifier=identifier)
        assert locked.status_code == 429


def test_code_guessing_is_bounded_across_resends(flow, monkeypatch):
    """5 tries per code, 10 wrong codes per account per 15 minutes, 5 sends per 15 minutes:
    at most 10 guesses in a window, a 1 in 100 000 chance for a 6-digit code."""
    _password(flow)
    clock = [time.time()]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    refused = 0
    for _round in range(3):
        _send(flow, "email")
        code = flow.last_code()
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(5):
            if _enter(flow, wrong).status_code == 429:
                refused += 1
        clock[0] += 31
    assert refused >= 5
    # Once the account limit is reached, even the right code is refused.
    _send(flow, "email")
    assert _enter(flow, flow.last_code()).status_code == 429


REVOKE_ONE = b'href="/malakoff/account/devices/revoke?device='


def _device_links(page) -> list[str]:
    """The trusted devices the account page lists: the ids its "Retirer" links name."""
    return [found.decode() for found in re.findall(re.escape(REVOKE_ONE) + rb'([\w-]+)"', page.data)]


def _remembered(flow) -> None:
    """Sign in with a code, "Se souvenir de moi" ticked."""
    _password(flow)
    _send(flow, "email")
    _enter(flow, flow.last_code(), remember=True)


def test_the_member_lists_and_revokes_trusted_devices(flow, db):
    _remembered(flow)
    page = flow.http.get("/malakoff/account")
    assert page.status_code == 200
    assert b"Appareils de confiance" in page.data
    [device_id] = _device_links(page)
    device = db.get(TrustedDevice, device_id)
    db.execute(update(TrustedDevice).values(created_at=datetime(2026, 3, 14, 9, 5),
                                            last_used_at=datetime(2026, 12, 3, 8, 52)))
    db.commit()
    html = flow.http.get("/malakoff/account").data.decode()
    # Its dates in words, and which one this browser is.
    assert f"{device.label}\u00a0<strong class=\"badge\">(ce navigateur)</strong>" in html
    assert "Ajouté le 14 mars 2026 à 10\u00a0h\u00a005" in html
    assert "Dernière utilisation\u00a0: le 3 décembre 2026 à 9\u00a0h\u00a052" in html

    # "Retirer" asks first: a page with the device, a form to confirm; nothing is removed yet.
    asked = flow.http.get(f"/malakoff/account/devices/revoke?device={device_id}")
    assert asked.status_code == 200
    assert "<h1>Retirer cet appareil de confiance\u00a0?</h1>".encode() in asked.data
    assert b"(ce navigateur)" in asked.data and f'value="{device_id}"'.encode() in asked.data
    assert b'href="/malakoff/account"' in asked.data  # "Annuler"
    db.expire_all()
    assert db.get(TrustedDevice, device_id).revoked_at is None

    revoked = flow.http.post("/malakoff/account/devices/revoke", data={
        "device": device_id, "confirm": "1", "csrf_token": csrf_token(asked.data)})
    assert revoked.status_code == 303 and revoked.headers["Location"].endswith("changed=device-removed")
    shown = flow.http.get(revoked.headers["Location"])
    assert "L’appareil est retiré de vos appareils de confiance".encode() in shown.data
    assert _device_links(shown) == []
    flow.authorize(prompt="login")
    assert _password(flow).headers["Location"].endswith("/malakoff/login/code")


def test_only_this_browser_is_marked_as_this_one(flow, app):
    _remembered(flow)
    other = Flow(app.test_client(), "malakoff", flow.rp, flow.account)
    _remembered(other)
    page = flow.http.get("/malakoff/account")
    mine, theirs = _device_links(page)
    html = page.data.decode()
    assert html.count("(ce navigateur)") == 1
    # Listed first, and marked.
    assert html.index("(ce navigateur)") < html.index(f"?device={mine}") < html.index(f"?device={theirs}")
    # The other browser, asked to remove this one: not its own.
    asked = other.http.get(f"/malakoff/account/devices/revoke?device={mine}")
    assert asked.status_code == 200 and b"(ce navigateur)" not in asked.data


def test_a_device_whose_record_expired_is_not_listed(flow, db):
    _remembered(flow)
    assert len(_device_links(flow.http.get("/malakoff/account"))) == 1

    db.execute(update(TrustedDevice).values(expires_at=utcnow()))
    db.commit()
    assert _device_links(flow.http.get("/malakoff/account")) == []


def test_a_device_no_longer_trusted_or_not_the_member_s_has_nothing_to_confirm(flow, app, make):
    stranger = Flow(app.test_client(), "malakoff", flow.rp, make.account("malakoff"))
    _remembered(stranger)
    [foreign] = _device_links(stranger.http.get("/malakoff/account"))
    flow.code()
    for device in (foreign, "no-such-device"):
        answer = flow.http.get(f"/malakoff/account/devices/revoke?device={device}")
        assert answer.status_code == 303 and answer.headers["Location"].endswith("/malakoff/account")
    assert len(_device_links(stranger.http.get("/malakoff/account"))) == 1


def test_revoke_all_forgets_every_browser(flow, app, db):
    for browser in (flow, Flow(app.test_client(), "malakoff", flow.rp, flow.account)):
        _remembered(browser)
    assert db.scalar(select(func.count()).select_from(TrustedDevice)) == 2
    page = flow.http.get("/malakoff/account")
    assert b'href="/malakoff/account/devices/revoke"' in page.data
    asked = flow.http.get("/malakoff/account/devices/revoke")
    assert "<h1>Retirer tous vos appareils de confiance\u00a0?</h1>".encode() in asked.data
    assert asked.data.count(b'class="device-label"') == 2
    done = flow.http.post("/malakoff/account/devices/revoke", data={
        "confirm": "1", "csrf_token": csrf_token(asked.data)})
    assert done.headers["Location"].endswith("changed=devices-removed")
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(TrustedDevice)
                     .where(TrustedDevice.revoked_at.is_(None))) == 0


def test_the_account_page_needs_a_signed_in_member(client):
    response = client.get("/malakoff/account")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/malakoff/login")


def test_sign_in_with_an_unknown_identifier_still_verifies_a_hash(flow, app, monkeypatch):
    """Same work whether the identifier exists or not: no timing oracle."""
    hasher = app.extensions["idp"].hasher
    calls = []
    original = hasher.verify
    monkeypatch.setattr(hasher, "verify",
                        lambda h, p, **costs: calls.append(h) or original(h, p, **costs))
    flow.login(flow.authorize(), identifier="nobody@example.org", password="wrong")
    flow.login(flow.authorize(), password="wrong")
    assert len(calls) == 2
    assert calls[0] is None and calls[1] is not None


def test_a_new_password_revokes_devices_tokens_and_other_sessions(flow, app, runner, db):
    _password(flow)
    _send(flow, "email")
    final = _enter(flow, flow.last_code(), remember=True)
    assert "code=" in final.headers["Location"], final.headers["Location"]
    tokens = flow.token(query(final.headers["Location"])["code"]).json
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert flow.http.get("/malakoff/userinfo", headers=bearer).status_code == 200

    result = runner.invoke(args=["accounts", "set-password", "--tenant", "malakoff", flow.identifier],
                           input="Brand-New-Pass-42!\n")
    assert result.exit_code == 0, result.output

    assert flow.http.get("/malakoff/userinfo", headers=bearer).status_code == 401
    assert flow.refresh(tokens.get("refresh_token") or "none").status_code == 400
    # The browser session that signed in before the change is over.
    assert query(flow.authorize(prompt="none").headers["Location"])["error"] == "login_required"
    # And the trusted device no longer skips the code.
    posted = flow.give_password("Brand-New-Pass-42!", prompt=None)
    assert posted.headers["Location"].endswith("/malakoff/login/code")
    assert db.scalar(select(func.count()).select_from(TrustedDevice)
                     .where(TrustedDevice.revoked_at.is_(None))) == 0


def test_a_legacy_pbkdf2_hash_is_upgraded_to_argon2id_at_sign_in(flow, db):
    digest = hashlib.pbkdf2_hmac("sha256", b"Ancien-Systeme-1!", b"salt", 1000)
    account = db.get(Account, flow.account.id)
    account.password_hash = f"pbkdf2_sha256$1000$salt${base64.b64encode(digest).decode()}"
    db.commit()
    response = flow.login(flow.authorize(), password="Ancien-Systeme-1!")
    assert "code" in query(response.headers["Location"])
    db.expire_all()
    assert db.get(Account, flow.account.id).password_hash.startswith("$argon2id$")


@pytest.mark.parametrize(("ui_locales", "subject", "sms_words", "locale"), [
    (None, "Votre code de connexion", "est votre code de connexion", "fr"),
    ("en-GB fr", "Your sign-in code", "sign-in code, valid for 3 min", "en"),
])
def test_codes_are_in_the_language_of_the_sign_in_pages_which_the_account_keeps(
        member_flow, db, ui_locales, subject, sms_words, locale):
    # The account said the other language before: the pages of this sign-in win.
    db.execute(update(Account).where(Account.id == member_flow.account.id)
               .values(locale="en" if locale == "fr" else "fr"))
    db.commit()
    assert member_flow.give_password(ui_locales=ui_locales).status_code == 303
    _send(member_flow, "email")
    page = member_flow.http.get(f"/{member_flow.tenant}/login/code/verify")
    member_flow.http.post(f"/{member_flow.tenant}/login/code/send",
                          data={"channel": "sms", "csrf_token": csrf_token(page.data)})
    email, sms = db.scalars(select(Message).where(Message.template == "otp_code")
                            .order_by(Message.id)).all()
    assert (email.channel, sms.channel) == ("email", "sms")
    assert email.subject == subject
    assert sms_words in sms.body_text
    db.expire_all()
    assert db.get(Account, member_flow.account.id).locale == locale


def test_a_sign_in_in_the_language_the_account_keeps_leaves_the_account_unwritten(member_flow, db):
    db.execute(update(Account).where(Account.id == member_flow.account.id).values(locale="fr"))
    db.commit()
    written = []

    def flushing(session, _context, _instances):
        written.extend(type(thing).__name__ for thing in session.dirty)

    event.listen(OrmSession, "before_flush", flushing)
    try:
        assert member_flow.give_password(ui_locales="fr").status_code == 303
    finally:
        event.remove(OrmSession, "before_flush", flushing)
    assert "Account" not in written
