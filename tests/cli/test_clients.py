"""`idp clients …`: registering relying parties per tenant (SPEC §8, §11)."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import ECKey, OKPKey
from sqlalchemy import select

from idp import events
from idp.events import AuditEvent
from idp.oidc.models import SUPPORTED_SCOPES, Client, Consent, token_digest

COMMANDS = ["add", "list", "show", "remove"]
REDIRECT = "https://portal.example.org/callback"


def clients(runner, *args: str, **kwargs):
    return runner.invoke(args=["clients", *args], **kwargs)


def add(runner, *args: str, tenant: str = "malakoff", redirect: str | None = REDIRECT):
    base = ["add", "--tenant", tenant, "--name", "Espace Client"]
    if redirect:
        base += ["--redirect-uri", redirect]
    return clients(runner, *base, *args)


def add_signed(runner, jwks_path: str):
    return add(runner, "--auth-method", "private_key_jwt", "--jwks", jwks_path)


def stored(db) -> list[Client]:
    db.rollback()
    return list(db.scalars(select(Client).order_by(Client.id)))


def audit(db, tag: str) -> list[AuditEvent]:
    db.rollback()
    return list(db.scalars(select(AuditEvent).where(AuditEvent.tag == tag)))


def assert_refused(result, message: str) -> None:
    assert result.exit_code != 0, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def public_jwks(*keys) -> dict:
    return {"keys": [key.as_dict(private=False) | {"kid": f"k{n}"} for n, key in enumerate(keys)]}


def write_json(tmp_path, document, name="jwks.json"):
    path = tmp_path / name
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return str(path)


def b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(runner, command):
    result = clients(runner, command, "--help")

    assert result.exit_code == 0, result.output
    assert f"clients {command}" in result.output


class TestAdd:
    def test_registers_a_confidential_client_and_prints_its_secret_once(self, runner, db):
        result = add(
            runner, "--redirect-uri", "https://portal.example.org/other",
            "--post-logout-uri", "https://portal.example.org/", "--first-party",
        )

        assert result.exit_code == 0, result.output
        (client,) = stored(db)
        secret = result.output.split("stored):")[1].split()[0]
        assert client.client_id in result.output
        assert client.client_id.startswith("malakoff-")
        assert client.tenant == "malakoff"
        assert client.name == "Espace Client"
        assert client.auth_method == "client_secret_basic"
        assert client.secret_digest == token_digest(secret)
        assert client.check_client_secret(secret)
        assert secret not in client.secret_digest
        assert client.redirect_uris == [REDIRECT, "https://portal.example.org/other"]
        assert client.post_logout_redirect_uris == ["https://portal.example.org/"]
        assert client.scopes == list(SUPPORTED_SCOPES)
        assert client.first_party is True
        assert client.jwks is None
        (event,) = audit(db, events.CLIENT_ADDED)
        assert (event.tenant, event.client_id) == ("malakoff", client.client_id)
        assert secret not in json.dumps(event.data)

    def test_json_output_for_machines(self, runner, db):
        result = add(runner, "--json", "--auth-method", "client_secret_post", "--client-id", "rp-1")

        assert result.exit_code == 0, result.output
        printed = json.loads(result.output)
        (client,) = stored(db)
        assert printed["client_id"] == client.client_id == "rp-1"
        assert client.check_client_secret(printed["client_secret"])
        assert client.auth_method == "client_secret_post"
        assert client.first_party is False  # third party unless told otherwise

    def test_a_public_client_gets_no_secret(self, runner, db):
        result = add(runner, "--auth-method", "none", "--json")

        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["client_secret"] is None
        (client,) = stored(db)
        assert client.is_public
        assert client.secret_digest is None

    def test_private_key_jwt_stores_public_keys_and_no_secret(self, runner, db, tmp_path, rsa_key):
        modulus = rsa_key.public_key().public_numbers().n
        jwks = {"keys": [
            {"kty": "RSA", "kid": "rsa", "use": "sig", "n": b64(modulus), "e": b64(65537)},
            ECKey.generate_key("P-256").as_dict(private=False) | {"kid": "ec"},
            OKPKey.generate_key("Ed25519").as_dict(private=False) | {"kid": "ed"},
        ]}

        result = add_signed(runner, write_json(tmp_path, jwks))

        assert result.exit_code == 0, result.output
        assert "no secret" in result.output
        (client,) = stored(db)
        assert client.secret_digest is None
        assert client.jwks == jwks

    @pytest.mark.parametrize(
        "uri",
        ["http://localhost:8080/callback", "http://127.0.0.1/cb", "http://[::1]:3000/cb",
         "https://portal.example.org:8443/cb?tenant=miel"],
    )
    def test_accepted_redirect_uris(self, runner, db, uri):
        result = add(runner, redirect=uri)

        assert result.exit_code == 0, result.output
        assert stored(db)[0].redirect_uris == [uri]

    def test_scopes_can_be_narrowed_and_given_in_one_value(self, runner, db):
        result = add(runner, "--scope", "openid profile", "--scope", "member", "--scope", "openid")

        assert result.exit_code == 0, result.output
        assert stored(db)[0].scopes == ["openid", "profile", "member"]

    def test_the_miel_tenant(self, runner, db):
        result = add(runner, tenant="miel")

        assert result.exit_code == 0, result.output
        assert stored(db)[0].client_id.startswith("miel-")

    def test_a_client_id_is_unique(self, runner, db, make):
        make.client("miel", client_id="portal-1")

        result = add(runner, "--client-id", "portal-1")

        assert_refused(result, "a client with id 'portal-1' already exists")
        assert len(stored(db)) == 1

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--tenant", "nope"], "unknown tenant 'nope' (known: malakoff, miel)"),
            (["--redirect-uri", "http://portal.example.org/cb"], "must use https"),
            (["--redirect-uri", "http://192.168.1.2/cb"], "must use https"),
            (["--redirect-uri", "/callback"], "must be absolute"),
            (["--redirect-uri", "portal.example.org/callback"], "must be absolute"),
            (["--redirect-uri", "https://portal.example.org/cb#x"], "must not contain a fragment"),
            (["--redirect-uri", "https://portal.example.org/cb#"], "must not contain a fragment"),
            (["--redirect-uri", "com.example.app:/cb"], "must be absolute"),
            (["--redirect-uri", "ftp://portal.example.org/cb"], "must use https, not 'ftp'"),
            (["--redirect-uri", "https://user:pw@portal.example.org/cb"], "credentials"),
            (["--redirect-uri", "https://*.example.org/cb"], "wildcard"),
            (["--redirect-uri", "https://portal.example.org/a b"], "spaces"),
            (["--redirect-uri", "https://portal.example.org:99999/cb"], "not a valid URI"),
            (["--post-logout-uri", "http://portal.example.org/"],
             "post-logout redirect URI 'http://portal.example.org/' must use https"),
            (["--scope", "openid", "--scope", "admin"], "unsupported scope(s): admin"),
            (["--scope", "profile"], "the scopes must include openid"),
            (["--auth-method", "private_key_jwt"], "private_key_jwt needs the client's public"),
            (["--auth-method", "client_secret_jwt"], "Invalid value for '--auth-method'"),
            (["--client-id", "a b"], "client id 'a b' must be"),
            (["--client-id", "x" * 65], "must be 3–64 characters"),
            (["--name", "   "], "the client needs a name"),
            (["--name", "x" * 101], "longer than 100"),
            (["--name", "Evil\x1b[2J"], "the name contains a control or invisible character"),
            (["--name", "Portail \u202eliam"], "the name contains a control or invisible character"),
        ],
    )
    def test_bad_input_is_refused_and_adds_nothing(self, runner, db, args, message):
        result = add(runner, *args)

        assert_refused(result, message)
        assert stored(db) == []
        assert audit(db, events.CLIENT_ADDED) == []

    def test_a_redirect_uri_is_required(self, runner, db):
        result = add(runner, redirect=None)

        assert_refused(result, "Missing option '--redirect-uri'")
        assert stored(db) == []

    @pytest.mark.parametrize(
        ("document", "message"),
        [
            ("{not json", "not valid JSON"),
            ([], 'a JSON object with a "keys" list'),
            ({"keys": []}, "the JWKS has no keys"),
            ({"keys": ["x"]}, "is not a JSON object"),
            ({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, "symmetric key"),
            ({"keys": [{"kty": "XYZ"}]}, "unsupported kty 'XYZ'"),
            ({"keys": [{"kty": "EC", "crv": "P-256", "x": "!!", "y": "!!"}]}, "cannot be read"),
            ({"keys": [{"kty": "RSA", "n": b64(2**1023 + 1), "e": b64(65537)}]}, "fewer than 2048"),
        ],
    )
    def test_a_bad_jwks_is_refused(self, runner, db, tmp_path, document, message):
        result = add_signed(runner, write_json(tmp_path, document))

        assert_refused(result, message)
        assert stored(db) == []

    def test_a_jwks_with_a_private_ec_key_is_refused(self, runner, db, tmp_path):
        private = ECKey.generate_key("P-256").as_dict(private=True)

        result = add_signed(runner, write_json(tmp_path, {"keys": [private]}))

        assert_refused(result, "contains private key material (d)")
        assert stored(db) == []

    def test_a_jwks_with_a_private_rsa_key_is_refused(self, runner, db, tmp_path, rsa_key):
        numbers = rsa_key.private_numbers()
        private = {
            "kty": "RSA", "kid": "leak", "n": b64(numbers.public_numbers.n), "e": b64(65537),
            "d": b64(numbers.d), "p": b64(numbers.p), "q": b64(numbers.q),
            "dp": b64(numbers.dmp1), "dq": b64(numbers.dmq1), "qi": b64(numbers.iqmp),
        }
        public = ECKey.generate_key("P-256").as_dict(private=False) | {"kid": "fine"}

        result = add_signed(runner, write_json(tmp_path, {"keys": [public, private]}))

        assert_refused(result, "key 'leak' contains private key material (d, p, q, dp, dq, qi)")
        assert stored(db) == []

    def test_keys_need_distinct_kids(self, runner, db, tmp_path):
        one, two = ECKey.generate_key("P-256"), ECKey.generate_key("P-256")
        unnamed = {"keys": [one.as_dict(private=False), two.as_dict(private=False)]}
        same = {"keys": [key | {"kid": "a"} for key in unnamed["keys"]]}

        for document, message in ((same, "two keys with kid 'a'"), (unnamed, "its own kid")):
            result = add_signed(runner, write_json(tmp_path, document))
            assert_refused(result, message)
        assert stored(db) == []

    def test_a_jwks_only_goes_with_private_key_jwt(self, runner, db, tmp_path):
        jwks = public_jwks(ECKey.generate_key("P-256"))

        result = add(runner, "--jwks", write_json(tmp_path, jwks))

        assert_refused(result, "only used with the private_key_jwt auth method")
        assert stored(db) == []

    def test_a_missing_jwks_file(self, runner, db, tmp_path):
        result = add_signed(runner, str(tmp_path / "none.json"))

        assert_refused(result, "cannot read")
        assert stored(db) == []


class TestList:
    def test_lists_the_tenants_clients_only(self, runner, make):
        first = make.client("malakoff", client_id="malakoff-portal")
        make.client("malakoff", client_id="malakoff-public", auth_method="none", first_party=False)
        make.client("miel", client_id="miel-portal")

        result = clients(runner, "list", "--tenant", "malakoff")

        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert lines[0].split() == [
            "CLIENT_ID", "NAME", "AUTH_METHOD", "PARTY", "REDIRECT_URIS", "CREATED",
        ]
        assert lines[1].startswith("malakoff-portal")
        assert "client_secret_basic" in lines[1]
        assert lines[2].startswith("malakoff-public")
        assert " none " in lines[2]
        assert "third" in lines[2]
        assert "miel-portal" not in result.output
        assert len(lines) == 3
        assert first.secret not in result.output

    def test_no_clients(self, runner):
        result = clients(runner, "list", "--tenant", "miel")

        assert result.exit_code == 0, result.output
        assert "no clients in tenant miel" in result.output

    def test_unknown_tenant(self, runner):
        assert_refused(clients(runner, "list", "--tenant", "acme"), "unknown tenant 'acme'")


class TestShow:
    def test_shows_every_setting_but_never_the_secret(self, runner):
        added = add(runner, "--json", "--client-id", "portal", "--post-logout-uri",
                    "https://portal.example.org/bye", "--scope", "openid", "--scope", "email")
        secret = json.loads(added.output)["client_secret"]

        result = clients(runner, "show", "portal")

        assert result.exit_code == 0, result.output
        assert secret not in result.output
        assert token_digest(secret) not in result.output
        for expected in ("client_id:", "portal", "malakoff", "Espace Client", "client_secret_basic",
                         "set (only its digest is stored)", "third", "openid email", REDIRECT,
                         "https://portal.example.org/bye", "created:"):
            assert expected in result.output

    def test_shows_the_kids_of_a_private_key_jwt_client(self, runner, make):
        make.client(client_id="signed", auth_method="private_key_jwt",
                    jwks=public_jwks(ECKey.generate_key("P-256")))

        result = clients(runner, "show", "signed")

        assert result.exit_code == 0, result.output
        assert "k0 (EC)" in result.output
        assert "none (private_key_jwt)" in result.output

    def test_a_name_stored_with_controls_is_shown_escaped(self, runner, make):
        # Stored before names were checked: shown, never run by the operator's terminal.
        make.client(client_id="old").name = "Evil\x1b[2J\u202e"
        make.db.commit()

        result = clients(runner, "show", "old")

        assert result.exit_code == 0, result.output
        assert "Evil\\x1b[2J\\u202e" in result.output
        assert "\x1b" not in result.output and "\u202e" not in result.output

    def test_unknown_client(self, runner):
        assert_refused(clients(runner, "show", "nope"), "no client with id 'nope'")


class TestRemove:
    def test_removes_the_client_with_its_consents(self, runner, db, make):
        client = make.client(client_id="portal")
        account = make.account()
        db.add(Consent(account_id=account.id, client_id=client.client_id, scopes=["openid"]))
        db.commit()

        result = clients(runner, "remove", "portal", "--yes")

        assert result.exit_code == 0, result.output
        assert "removed client portal" in result.output
        assert stored(db) == []
        assert db.scalars(select(Consent)).all() == []
        (event,) = audit(db, events.CLIENT_REMOVED)
        assert (event.tenant, event.client_id) == ("malakoff", "portal")

    def test_asks_for_confirmation(self, runner, db, make):
        make.client(client_id="portal")

        refused = clients(runner, "remove", "portal", input="n\n")

        assert_refused(refused, "Remove client portal")
        assert "Aborted" in refused.output
        assert len(stored(db)) == 1
        assert audit(db, events.CLIENT_REMOVED) == []

        confirmed = clients(runner, "remove", "portal", input="y\n")

        assert confirmed.exit_code == 0, confirmed.output
        assert stored(db) == []

    def test_unknown_client(self, runner, make):
        make.client(client_id="portal")

        assert_refused(clients(runner, "remove", "nope", "--yes"), "no client with id 'nope'")


def test_a_client_registers_a_back_channel_logout_uri(runner, db):
    result = add(runner, "--client-id", "malakoff-bcl", "--backchannel-logout-uri",
                 "https://portal.example.org/backchannel-logout",
                 "--backchannel-logout-session-required")
    assert result.exit_code == 0, result.output
    (client,) = stored(db)
    assert client.backchannel_logout_uri == "https://portal.example.org/backchannel-logout"
    assert client.backchannel_logout_session_required is True
    shown = clients(runner, "show", "malakoff-bcl").output
    assert "back-channel logout: https://portal.example.org/backchannel-logout (sid required)" in shown


@pytest.mark.parametrize(("uri", "reason"), [
    ("http://portal.example.org/logout", "must use https"),
    ("https://portal.example.org/logout#frag", "must not contain a fragment"),
    ("/backchannel-logout", "must be absolute"),
    ("https://user:pw@portal.example.org/logout", "must not contain credentials"),
])
def test_a_back_channel_logout_uri_must_be_absolute_https_without_fragment(runner, db, uri, reason):
    result = add(runner, "--backchannel-logout-uri", uri)
    assert result.exit_code == 1
    assert f"back-channel logout URI {uri!r} {reason}" in result.output
    assert stored(db) == []


def test_loopback_http_is_allowed_for_development(runner, db):
    result = add(runner, "--backchannel-logout-uri", "http://127.0.0.1:5001/backchannel-logout")
    assert result.exit_code == 0, result.output


def test_update_sets_and_removes_the_back_channel_logout_uri(runner, db):
    add(runner, "--client-id", "malakoff-bcl")
    result = clients(runner, "update", "malakoff-bcl", "--backchannel-logout-uri",
                     "https://portal.example.org/bcl")
    assert result.exit_code == 0
    assert result.output.endswith(
        "back-channel logout https://portal.example.org/bcl, pushed requests optional\n")
    refused = clients(runner, "update", "malakoff-bcl", "--backchannel-logout-uri", "ftp://x.example/")
    assert refused.exit_code == 1 and "must use https" in refused.output
    assert stored(db)[0].backchannel_logout_uri == "https://portal.example.org/bcl"
    both = clients(runner, "update", "malakoff-bcl", "--backchannel-logout-uri",
                   "https://portal.example.org/bcl", "--no-backchannel-logout")
    assert both.exit_code == 2
    removed = clients(runner, "update", "malakoff-bcl", "--no-backchannel-logout")
    assert removed.output.endswith("back-channel logout none, pushed requests optional\n")
    assert stored(db)[0].backchannel_logout_uri is None
