"""Records as the session and the store keep them: every field, JSON-ready, read back the same."""

from __future__ import annotations

import json

import pytest

from idp.accounts.levels import Authentication
from idp.mfa.services import Challenge
from idp.oidc.interactions import Interaction
from idp.oidc.pushed import PushedRequest
from idp.records import record
from idp.signin.state import Pending

PARAMS = [["client_id", "portal"], ["scope", "openid email"], ["scope", "profile"], ["state", "é\"<"]]


@pytest.mark.parametrize("instance", [
    Interaction(id="i1", tenant="malakoff", params=PARAMS, login_done=True, reasons=["max_age"],
                expires_at=1.5),
    Pending(account_id="a1", interaction=None, reason="login", started_at=2.0,
            challenge={"id": "c1", "channel": "sms"}, code_message=7, amr=["pwd", "otp"], acr="x"),
    Authentication(account_id="a1", auth_time=3, amr=["pwd"], acr="urn:mh:acr:pwd", since=4.0),
    Challenge(id="c1", tenant="miel", account_id="a1", channel="email", digest="d", issued_at=5.0,
              expires_at=6.0),
    PushedRequest(client_id="portal", params=PARAMS),
], ids=lambda instance: type(instance).__name__)
def test_a_record_keeps_every_field_and_reads_back_the_same(instance):
    kept = json.loads(json.dumps(record(instance)))
    assert type(instance)(**kept) == instance
