"""One database transaction per request, committed once its view has answered.

Views never commit. A view that raises is rolled back (the error boundary then answers).
The protocol API (token, revocation, …) commits only a successful answer: an OAuth error
there means nothing happened (RFC 6749 5.2), so what the failed grant added is dropped,
for instance the tokens of the loser of two concurrent redemptions of one code. Services
that must commit earlier (a code whose delivery the page reports) say so in their contract.
"""

from __future__ import annotations

from flask import Flask, g, request


class Provider(Flask):
    """Flask, with the request's transaction committed once its view has answered."""

    #: Blueprints whose error answers leave nothing behind.
    commit_on_success_only: frozenset[str] = frozenset({"oidc_api"})

    def dispatch_request(self):
        response = self.make_response(super().dispatch_request())
        session = g.get("db")
        if session is not None:
            if response.status_code >= 400 and request.blueprint in self.commit_on_success_only:
                session.rollback()
            else:
                session.commit()
        return response
