"""Two provider nodes under the production server, sharing PostgreSQL, Redis and the keys directory:
any node serves any step of a sign-in, and a key rotation reaches both (SPEC §11)."""

from __future__ import annotations

import itertools
import json
from urllib.parse import urlsplit

import pytest
import requests
from joserfc import jws
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import DATABASE_URL, REDIS_URL
from tests.flows import Flow, query
from tests.servers import node_environment

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(
        not (DATABASE_URL and REDIS_URL),
        reason="two nodes need a shared PostgreSQL and Redis: set IDP_TEST_DATABASE_URL and "
               "IDP_TEST_REDIS_URL (SQLite and the in-process store are single-process)"),
]


class Answer:
    """A ``requests`` response with the test client's attributes, which tests.flows reads."""

    def __init__(self, response: requests.Response):
        self.status_code = response.status_code
        self.headers = response.headers
        self.data = response.content

    @property
    def json(self):
        return json.loads(self.data)


class Alternating:
    """One browser (one cookie jar) whose every request goes to the next node in turn."""

    def __init__(self, urls: list[str], application):
        self.application = application  # tests.flows reads the outbox through it
        self.session = requests.Session()
        self.urls = itertools.cycle(urls)
        self.served_by: list[str] = []

    def open(self, method: str, url: str, *, query_string=None, data=None, headers=None,
             auth=None) -> Answer:
        parts = urlsplit(url)
        target = next(self.urls)
        self.served_by.append(target)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return Answer(self.session.request(method, target + path, params=query_string, data=data,
                                           headers=headers, auth=auth, allow_redirects=False,
                                           timeout=10))

    def get(self, url: str, **options) -> Answer:
        return self.open("GET", url, **options)

    def post(self, url: str, **options) -> Answer:
        return self.open("POST", url, **options)


def _count(url: str, name: str, **labels) -> float:
    exposition = requests.get(f"{url}/metrics", timeout=5).text
    return sum(sample.value for family in text_string_to_metric_families(exposition)
               for sample in family.samples
               if sample.name == name and labels.items() <= sample.labels.items())


def _kids(url: str, tenant: str) -> set[str]:
    return {key["kid"] for key in requests.get(f"{url}/{tenant}/jwks", timeout=5).json()["keys"]}


def test_two_nodes_serve_alternate_steps_of_a_sign_in_and_see_the_same_keys(
        app, settings, make, runner, provider_nodes, tmp_path):
    environment = node_environment(settings, cookie_secure=False)
    # Node one runs two workers that add up their counters (PROMETHEUS_MULTIPROC_DIR).
    one = provider_nodes({**environment, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")},
                         workers=2)
    two = provider_nodes(environment)
    browser = Alternating([one.url, two.url], app)
    account = make.account("malakoff")
    flow = Flow(browser, "malakoff", make.client(), account)

    tokens = flow.tokens(scope="openid email offline_access")
    served = set(browser.served_by)
    assert served == {one.url, two.url} and len(browser.served_by) >= 7
    claims = flow.id_token_claims(tokens["id_token"])
    assert claims["sub"] == account.id and claims["amr"] == ["pwd", "otp", "mail"]
    userinfo = browser.get("/malakoff/userinfo",
                           headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status_code == 200 and userinfo.json["sub"] == account.id
    refreshed = flow.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.json
    # The one sign-in, counted once whichever worker of which node checked the password.
    for _ in range(3):
        assert _count(one.url, "idp_sign_ins_total", tenant="malakoff", outcome="success") + _count(
            two.url, "idp_sign_ins_total", tenant="malakoff", outcome="success") == 1

    before = _kids(one.url, "malakoff")
    assert _kids(two.url, "malakoff") == before
    rotated = runner.invoke(args=["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    after = _kids(one.url, "malakoff")
    assert after - before, "rotate publishes a new key"
    assert _kids(two.url, "malakoff") == after
    # The key published before now signs, on whichever node; the one it replaced stays published.
    signed_in = flow.authorize()  # the browser's session, kept in Redis, signs in at once
    second = flow.token(query(signed_in.headers["Location"])["code"]).json
    assert _kid(second["id_token"]) != _kid(tokens["id_token"])
    assert {_kid(second["id_token"]), _kid(tokens["id_token"])} <= after
    assert flow.id_token_claims(second["id_token"])["sub"] == account.id

    for node in (one, two):
        lines = node.log_lines()
        assert lines, "the node logged nothing"
        records = [json.loads(line) for line in lines]
        assert any(r["logger"] == "idp.request" and r.get("request_id") for r in records)
        text = "\n".join(lines)
        for secret in (tokens["access_token"], tokens["refresh_token"], tokens["id_token"],
                       flow.rp.secret):
            assert secret not in text


def _kid(token: str) -> str:
    return jws.extract_compact(token.encode()).protected["kid"]
