"""Token revocation (RFC 7009)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import OperationalError

from idp.events import TOKEN_REVOKED, AuditEvent
from idp.oidc.models import Token, token_digest
from idp.oidc.revocation import revoke_tokens
from tests.conftest import DATABASE_URL
from tests.flows import Flow, query

REVOKE = "/malakoff/revoke"
OFFLINE = "openid profile offline_access"


def revoked_count(db) -> int:
    db.rollback()  # see what the requests committed
    return db.scalar(select(func.count()).select_from(Token).where(Token.revoked_at.is_not(None)))


def userinfo_status(http, access_token: str, tenant: str = "malakoff") -> int:
    return http.get(
        f"/{tenant}/userinfo", headers={"Authorization": f"Bearer {access_token}"}
    ).status_code


def revoke(flow: Flow, token: str, **extra):
    return flow.http.post(
        f"/{flow.tenant}/revoke",
        data={"token": token, **extra},
        auth=(flow.rp.client_id, flow.rp.secret),
    )


def assert_revoked_ok(response) -> None:
    # RFC 7009 2.2: 200, the content of the body is ignored by the client.
    assert response.status_code == 200, response.data[:300]
    assert response.json == {}


@pytest.fixture
def offline(flow) -> dict:
    return flow.tokens(scope=OFFLINE)


# -- access tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token"])
def test_revoke_access_token(flow, client, offline, db, hint):
    extra = {"token_type_hint": hint} if hint else {}

    assert_revoked_ok(revoke(flow, offline["access_token"], **extra))

    assert userinfo_status(client, offline["access_token"]) == 401
    assert revoked_count(db) == 1
    event = db.scalar(select(AuditEvent).where(AuditEvent.tag == TOKEN_REVOKED))
    assert event.data == {"kind": "access_token", "revoked_tokens": 1}
    assert event.client_id == flow.rp.client_id


def test_revoking_the_current_access_token_also_ends_its_refresh_token(flow, offline):
    """Access and refresh token share a row: revoking one revokes the grant (RFC 7009 2.1 MAY)."""
    revoke(flow, offline["access_token"])

    response = flow.refresh(offline["refresh_token"])

    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"


def test_revoking_an_access_token_leaves_other_grants_alone(flow, client, offline):
    other = flow.token(_next_code(flow)).json

    revoke(flow, offline["access_token"])

    assert userinfo_status(client, other["access_token"]) == 200


def test_revocation_is_idempotent(flow, offline):
    assert_revoked_ok(revoke(flow, offline["access_token"]))
    assert_revoked_ok(revoke(flow, offline["access_token"]))


# -- refresh tokens --------------------------------------------------------------------------------


@pytest.mark.parametrize("hint", [None, "refresh_token", "access_token"])
def test_revoking_a_refresh_token_ends_its_family(flow, client, offline, db, hint):
    second = flow.refresh(offline["refresh_token"]).json
    extra = {"token_type_hint": hint} if hint else {}

    assert_revoked_ok(revoke(flow, second["refresh_token"], **extra))

    refused = flow.refresh(second["refresh_token"])
    assert refused.status_code == 400
    assert refused.json["error"] == "invalid_grant"
    assert userinfo_status(client, offline["access_token"]) == 401
    assert userinfo_status(client, second["access_token"]) == 401
    assert revoked_count(db) == 2


def test_revoking_an_old_refresh_token_ends_its_family(flow, client, offline):
    second = flow.refresh(offline["refresh_token"]).json

    assert_revoked_ok(revoke(flow, offline["refresh_token"]))

    assert flow.refresh(second["refresh_token"]).json["error"] == "invalid_grant"
    assert userinfo_status(client, second["access_token"]) == 401


def test_a_family_whose_head_was_revoked_alone_is_revoked_whole_later(flow, client, offline, db):
    # The head's access token revoked first (its row alone), then the family from its first
    # token: every row goes, the head's included (on PostgreSQL the family is found headless,
    # and the pass after finds nothing more).
    second = flow.refresh(offline["refresh_token"]).json
    assert_revoked_ok(revoke(flow, second["access_token"]))
    assert revoked_count(db) == 1

    assert_revoked_ok(revoke(flow, offline["refresh_token"]))

    assert revoked_count(db) == 2
    assert userinfo_status(client, offline["access_token"]) == 401


def test_an_account_s_tokens_revoked_in_a_transaction_count_each_once(flow, offline, db):
    # The revocation of account changes, on the request's session: a family whose head went
    # before is revoked whole, each token counted once.
    second = flow.refresh(offline["refresh_token"]).json
    assert_revoked_ok(revoke(flow, second["access_token"]))
    db.rollback()

    revoked = revoke_tokens(db, Token.account_id == flow.account.id, TOKEN_REVOKED,
                            tenant=flow.tenant, account_id=flow.account.id)
    db.commit()

    assert revoked == 1
    assert revoked_count(db) == 2


def test_revoking_a_refresh_token_leaves_other_families_alone(flow, client, offline):
    other = flow.token(_next_code(flow)).json

    revoke(flow, offline["refresh_token"])

    assert userinfo_status(client, other["access_token"]) == 200
    assert flow.refresh(other["refresh_token"]).status_code == 200


# -- a revocation and its audit row stand or fall together -----------------------------------------


@contextmanager
def audit_refused(app) -> Iterator[None]:
    """The database refuses audit rows, as a full disk would."""
    engine = app.extensions["idp"].database.engine

    def refuse(_connection, _cursor, statement, params, _context, _many):
        if "INSERT INTO audit_events" in statement:
            raise OperationalError(statement, params, Exception("disk full"))

    event.listen(engine, "before_cursor_execute", refuse)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", refuse)


def test_a_revocation_whose_audit_row_fails_revokes_nothing(app, flow, client, offline, db):
    with audit_refused(app):
        assert revoke(flow, offline["refresh_token"]).status_code == 503

    assert revoked_count(db) == 0
    assert userinfo_status(client, offline["access_token"]) == 200


def test_a_replay_whose_audit_row_fails_revokes_nothing(app, flow, offline, db):
    second = flow.refresh(offline["refresh_token"]).json
    with audit_refused(app):
        assert flow.refresh(offline["refresh_token"]).status_code == 503

    assert revoked_count(db) == 0
    assert flow.refresh(second["refresh_token"]).status_code == 200


# -- a revocation racing a rotation (PostgreSQL) --------------------------------------------------
#
# A family's revocation waits for its head's row while a rotation holds it; the rotation commits
# the family's next token, which the revocation's statement, begun before, does not see. Here the
# test holds the head's row as a rotation under way would, so that both wait on it in that order.

POSTGRESQL = pytest.mark.skipif(
    not DATABASE_URL, reason="a race of PostgreSQL's row locks: set IDP_TEST_DATABASE_URL")


@contextmanager
def head_held(app, refresh_token: str) -> Iterator[Callable[[int], None]]:
    """The row of ``refresh_token`` locked by a transaction of the test's until the block ends;
    the block gets a wait for that many statements waiting on a lock."""
    engine = app.extensions["idp"].database.engine
    with engine.connect() as holder, engine.connect() as watcher:
        holder.execute(select(Token.id).where(Token.refresh_token_digest == token_digest(refresh_token))
                       .with_for_update())

        def waiting(count: int) -> None:
            deadline = time.monotonic() + 10
            while watcher.scalar(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()")) < count:
                assert time.monotonic() < deadline, "the requests never waited on the row"
                time.sleep(0.01)
                watcher.rollback()

        yield waiting
        holder.commit()


def _post(app, flow: Flow, path: str, data: dict):
    return app.test_client().post(f"/{flow.tenant}/{path}", data=data,
                                  auth=(flow.rp.client_id, flow.rp.secret))


def _ended(flow: Flow, client, tokens: dict) -> bool:
    return (flow.refresh(tokens["refresh_token"]).json.get("error") == "invalid_grant"
            and userinfo_status(client, tokens["access_token"]) == 401)


@POSTGRESQL
def test_revoking_a_family_while_its_head_rotates_ends_the_new_token_too(app, flow, client, offline):
    # RFC 7009 2.1: the rotation came first, so its token belongs to the family revoked.
    refresh = {"grant_type": "refresh_token", "refresh_token": offline["refresh_token"]}
    with ThreadPoolExecutor(2) as pool:
        with head_held(app, offline["refresh_token"]) as waiting:
            rotation = pool.submit(_post, app, flow, "token", refresh)
            waiting(1)
            revocation = pool.submit(_post, app, flow, "revoke", {"token": offline["refresh_token"]})
            waiting(2)
        rotated, revoked = rotation.result(), revocation.result()

    assert rotated.status_code == 200, rotated.json
    assert_revoked_ok(revoked)
    assert _ended(flow, client, rotated.json)


@POSTGRESQL
def test_a_replayed_refresh_token_ends_the_token_a_rotation_under_way_issues(app, flow, client, offline):
    # RFC 9700 4.14.2: a rotated token presented again revokes the family, whoever rotates its
    # head at that moment (the thief or the member).
    second = flow.refresh(offline["refresh_token"]).json
    with ThreadPoolExecutor(2) as pool:
        with head_held(app, second["refresh_token"]) as waiting:
            rotation = pool.submit(_post, app, flow, "token",
                                   {"grant_type": "refresh_token", "refresh_token": second["refresh_token"]})
            waiting(1)
            replay = pool.submit(_post, app, flow, "token",
                                 {"grant_type": "refresh_token", "refresh_token": offline["refresh_token"]})
            waiting(2)
        rotated, replayed = rotation.result(), replay.result()

    assert rotated.status_code == 200, rotated.json
    assert replayed.json["error"] == "invalid_grant"
    assert _ended(flow, client, rotated.json)


# -- tokens that are not the client's -----------------------------------------------------------


@pytest.mark.parametrize("token", ["unknown", "x" * 43, "x" * 500, ""])
def test_unknown_token_is_200(flow, offline, db, token):
    # RFC 7009 2.2: invalid tokens do not cause an error response.
    assert_revoked_ok(revoke(flow, token))
    assert revoked_count(db) == 0


def test_token_of_another_client_is_refused_and_kept(flow, client, make, offline, db):
    """Authlib refuses with invalid_grant (RFC 6749 5.2: "issued to another client")."""
    other = Flow(client, "malakoff", make.client(), flow.account)

    response = revoke(other, offline["access_token"])

    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"
    assert revoked_count(db) == 0
    assert userinfo_status(client, offline["access_token"]) == 200
    assert revoke(other, offline["refresh_token"]).json["error"] == "invalid_grant"
    assert flow.refresh(offline["refresh_token"]).status_code == 200


def test_token_of_the_other_tenant_is_unknown_here(client, make, offline, flow, db):
    miel = Flow(client, "miel", make.client("miel"), make.account("miel"))
    miel_tokens = miel.tokens(scope=OFFLINE)

    assert_revoked_ok(revoke(flow, miel_tokens["access_token"]))
    assert_revoked_ok(revoke(flow, miel_tokens["refresh_token"]))

    assert revoked_count(db) == 0
    assert userinfo_status(client, miel_tokens["access_token"], "miel") == 200


# -- request errors --------------------------------------------------------------------------------


def test_missing_token_is_invalid_request(flow, offline, db):
    response = flow.http.post(
        REVOKE, data={"token_type_hint": "access_token"}, auth=(flow.rp.client_id, flow.rp.secret)
    )

    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"
    assert revoked_count(db) == 0


@pytest.mark.parametrize("hint", ["id_token", "bearer", "ACCESS_TOKEN", "urn:x"])
def test_unsupported_token_type_hint(flow, offline, db, hint):
    response = revoke(flow, offline["access_token"], token_type_hint=hint)

    # RFC 7009 2.2.1, with the status of RFC 6749 5.2.
    assert response.status_code == 400
    assert response.json["error"] == "unsupported_token_type"
    assert revoked_count(db) == 0


@pytest.mark.parametrize(
    "auth",
    [
        lambda rp: {"auth": (rp.client_id, "wrong")},
        lambda rp: {"auth": ("unknown", rp.secret)},
        lambda rp: {"data": {"client_id": rp.client_id}},
        lambda _rp: {},
    ],
    ids=["wrong-secret", "unknown-client", "client-id-only", "none"],
)
def test_bad_client_authentication(flow, client, offline, db, auth):
    kwargs = auth(flow.rp)
    data = {"token": offline["access_token"], **kwargs.pop("data", {})}

    response = client.post(REVOKE, data=data, **kwargs)

    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"
    assert revoked_count(db) == 0
    assert userinfo_status(client, offline["access_token"]) == 200


def test_revocation_only_by_post(flow, offline):
    response = flow.http.get(
        REVOKE,
        query_string={"token": offline["access_token"]},
        auth=(flow.rp.client_id, flow.rp.secret),
    )

    assert response.status_code == 405


def test_public_client_revokes_with_its_client_id(client, make, member):
    flow = Flow(client, "malakoff", make.client(auth_method="none"), member)
    tokens = flow.token(flow.code(scope=OFFLINE), client_id=flow.rp.client_id).json

    response = client.post(
        REVOKE, data={"token": tokens["refresh_token"], "client_id": flow.rp.client_id}
    )

    assert_revoked_ok(response)
    assert userinfo_status(client, tokens["access_token"]) == 401


def test_client_secret_post_client_revokes(client, make, member):
    rp = make.client(auth_method="client_secret_post")
    flow = Flow(client, "malakoff", rp, member)
    tokens = flow.token(flow.code(), client_id=rp.client_id, client_secret=rp.secret).json

    response = client.post(
        REVOKE,
        data={
            "token": tokens["access_token"],
            "client_id": rp.client_id,
            "client_secret": rp.secret,
        },
    )

    assert_revoked_ok(response)
    assert userinfo_status(client, tokens["access_token"]) == 401


def _next_code(flow: Flow) -> str:
    return query(flow.authorize(scope=OFFLINE).headers["Location"])["code"]
