"""Security headers (SPEC §9): added to every answer, without overriding an answer's own."""

from __future__ import annotations

from flask import Response

from idp.web.headers import CSP, security_headers


def test_an_answer_without_them_gets_every_one_and_is_not_cached():
    headers = security_headers(Response("page")).headers
    assert headers["Content-Security-Policy"] == CSP
    assert headers["Strict-Transport-Security"] == "max-age=63072000; includeSubDomains"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"
    assert headers["Pragma"] == "no-cache"


def test_an_answers_own_fields_win_whatever_their_case():
    response = Response("page", headers=[("content-security-policy", "sandbox"),
                                         ("cache-control", "public, max-age=60")])
    headers = security_headers(response).headers
    assert headers.getlist("Content-Security-Policy") == ["sandbox"]
    assert headers.getlist("Cache-Control") == ["public, max-age=60"]
    assert "Pragma" not in headers
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_an_uncacheable_answer_has_one_pragma():
    response = Response("page", headers=[("Pragma", "public")])
    headers = security_headers(response).headers
    assert headers.getlist("Pragma") == ["no-cache"]
    assert headers.getlist("Cache-Control") == ["no-store"]
