"""Keys activated while tokens are issued in parallel: every ID token is signed by the key
its header names, with that key's alg (SPEC §8: no token in flight fails verification)."""

from __future__ import annotations

import json
import threading
import time
from base64 import urlsafe_b64decode
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from idp import create_app
from idp.keystore import KeyStore
from tests.conftest import DATABASE_URL, REDIS_URL
from tests.flows import query
from tests.servers import missing, node_environment, werkzeug_serving

ACTIVATIONS = 100
# Codes ready to exchange: tokens are issued until the last activation is done (at least
# MIN_TOKENS of them), whatever the machine's speed. The exchanges keep at most
# TOKENS_PER_ACTIVATION ahead of the activations, so that a busy machine, slowing the
# activations more than the server, does not spend the codes before the last activation.
TOKENS = 400
MIN_TOKENS = 120
TOKENS_PER_ACTIVATION = 3


def _header(token: str) -> dict:
    return json.loads(urlsafe_b64decode(token.split(".")[0] + "=="))


def _mismatch(id_token: str, published: dict[str, dict]) -> str | None:
    """Why ``id_token`` does not verify against the JWKS key its header names, if it does not."""
    header = _header(id_token)
    jwk = published.get(header.get("kid", ""))
    if jwk is None:
        return f"kid {header.get('kid')!r} is not published"
    if header["alg"] != jwk["alg"]:
        return f"header alg {header['alg']} but key {jwk['kid']} is {jwk['alg']}"
    key = RSAKey.import_key(jwk) if jwk["kty"] == "RSA" else ECKey.import_key(jwk)
    try:
        jwt.decode(id_token, key, algorithms=[jwk["alg"]])
    except JoseError as exc:
        return f"signature does not verify with {jwk['kid']}: {exc}"
    return None


# The exchanges below wait up to this long for their answer: a request is late only past it
# (IDP_REQUEST_DEADLINE_SECONDS), however slow a machine shared with other work makes the first ones.
CLIENT_WAIT = 30


@pytest.fixture(params=["werkzeug", "production"])
def token_url(request, settings):
    """The token endpoint on a real port: Werkzeug's threaded server (one process), or the
    production server (idp.web.server, two worker processes)."""
    if request.param == "production":
        if not DATABASE_URL.startswith("postgresql") or not REDIS_URL:
            missing("two workers need a shared PostgreSQL and Redis")
        node = request.getfixturevalue("provider_nodes")(node_environment(
            settings, cookie_secure=False, request_deadline_seconds=CLIENT_WAIT), workers=2)
        yield f"{node.url}/malakoff"
        return
    with werkzeug_serving(create_app({**settings, "request_deadline_seconds": CLIENT_WAIT})) as url:
        yield f"{url}/malakoff"


def test_tokens_issued_during_activations_verify_with_the_key_their_header_names(
        flow, settings, token_url):
    # Another process's view of the same keys directory, as `idp keys activate` would have.
    operator = KeyStore(settings["keys_dir"], prepublish_seconds=0, retain_seconds=3600)
    upcoming = [operator.generate("ES256" if i % 2 else "RS256").kid for i in range(ACTIVATIONS)]
    flow.sign_in()
    codes = [query(flow.authorize().headers["Location"])["code"] for _ in range(TOKENS)]

    url = f"{token_url}/token"
    issued: list[str] = []
    activated: list[str] = []
    failures: list[str] = []
    done = threading.Event()

    def exchange(code: str) -> None:
        if done.is_set() and len(issued) >= MIN_TOKENS:
            return  # the activations are over: enough tokens were issued across them
        while len(issued) >= (len(activated) + 1) * TOKENS_PER_ACTIVATION and activator.is_alive():
            time.sleep(0.002)
        answer = requests.post(url, timeout=CLIENT_WAIT, auth=(flow.rp.client_id, flow.rp.secret), data={
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": flow.rp.redirect_uris[0], "code_verifier": flow.verifier})
        if answer.status_code == 200:
            issued.append(answer.json()["id_token"])
        else:
            failures.append(f"{answer.status_code} {answer.text[:200]}")

    def activate_all() -> None:
        # Each activation waits for a token issued since the one before: the run interleaves
        # both, however slowly the first answers come on a busy machine.
        seen = 0
        for kid in upcoming:
            while len(issued) == seen and not issuing_over.is_set():
                time.sleep(0.002)
            if issuing_over.is_set():
                return
            seen = len(issued)
            operator.activate(kid, force=True)
            activated.append(kid)
        done.set()

    issuing_over = threading.Event()
    activator = threading.Thread(target=activate_all)
    activator.start()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(exchange, codes))
    issuing_over.set()
    activator.join(timeout=60)
    published = {jwk["kid"]: jwk for jwk in
                 requests.get(f"{token_url}/jwks", timeout=10).json()["keys"]}

    assert failures == []
    assert activated == upcoming, "every activation happened while tokens were issued"
    assert len(issued) >= MIN_TOKENS
    assert [why for token in issued if (why := _mismatch(token, published))] == []
    # Both algorithms signed during the run: the activations did overlap the issuing.
    assert {_header(token)["alg"] for token in issued} == {"RS256", "ES256"}
