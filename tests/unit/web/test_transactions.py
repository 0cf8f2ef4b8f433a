"""One transaction per request (idp.web.transactions.Provider), on a tiny app."""

from __future__ import annotations

import pytest
from flask import Blueprint, abort, g

from idp.web.transactions import Provider


class Recording:
    """Stands for the request's database session: records what the request did with it."""

    def __init__(self):
        self.calls: list[str] = []
        self.info: dict[str, object] = {}  # a session in a transaction, not an autocommitting one

    def commit(self):
        self.calls.append("commit")

    def rollback(self):
        self.calls.append("rollback")

    def in_transaction(self):
        return True  # every view of this app has used it


@pytest.fixture
def app():
    app = Provider(__name__)
    pages = Blueprint("pages", __name__)
    api = Blueprint("oidc_api", __name__)

    @pages.get("/ok")
    def ok():
        g.db = g.session
        return "done"

    @pages.get("/refused")
    def refused():
        g.db = g.session
        return "no", 401

    @pages.get("/raises")
    def raises():
        g.db = g.session
        abort(400)

    @api.get("/api/error")
    def api_error():
        g.db = g.session
        return {"error": "invalid_grant"}, 400

    @api.get("/api/ok")
    def api_ok():
        g.db = g.session
        return {"access_token": "…"}

    @pages.get("/no-database")
    def no_database():
        return "static"

    app.register_blueprint(pages)
    app.register_blueprint(api)
    return app


@pytest.mark.parametrize(("path", "status", "calls"), [
    ("/ok", 200, ["commit"]),
    # A page's refusal keeps what it recorded (the audit event of a failure).
    ("/refused", 401, ["commit"]),
    # A view that raises leaves its changes to the teardown's rollback.
    ("/raises", 400, []),
    # The protocol API keeps only successful answers (RFC 6749 5.2).
    ("/api/error", 400, ["rollback"]),
    ("/api/ok", 200, ["commit"]),
    ("/no-database", 200, []),
])
def test_the_request_commits_once_its_view_has_answered(app, path, status, calls):
    session = Recording()

    @app.before_request
    def give_session():
        g.session = session

    response = app.test_client().get(path)
    assert response.status_code == status
    assert session.calls == calls


def test_a_coroutine_view_is_still_run_as_flask_runs_it(app, monkeypatch):
    """Whether a view is a coroutine function is asked once per view, with the same answer:
    a plain view runs as it is, a coroutine one goes through Flask's async support."""
    monkeypatch.setattr(app, "async_to_sync", lambda func: ("in an event loop", func))

    async def later():
        return "done"

    def now():
        return "done"

    for _ in range(2):
        assert app.ensure_sync(now) is now
        assert app.ensure_sync(later) == ("in an event loop", later)
