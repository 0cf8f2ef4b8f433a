"""The environ the production server's bridge gives the provider for an RSGI request."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from idp.web.server import _Body, wsgi_environ
from idp.web.transactions import CLIENT_GONE


class Headers:
    """RSGI's header fields: every field in the order received, repeated ones included."""

    def __init__(self, fields: list[tuple[str, str]]):
        self.fields = fields

    def items(self) -> list[tuple[str, str]]:
        return list(self.fields)


def scope(fields: list[tuple[str, str]], path: str = "/malakoff/token") -> SimpleNamespace:
    return SimpleNamespace(server="127.0.0.1:8000", client="[::1]:51234", method="POST", path=path,
                           query_string="a=1", http_version="1.1", scheme="http", headers=Headers(fields))


def environ(fields: list[tuple[str, str]], **options) -> dict:
    return wsgi_environ(scope(fields, **options), _Body(lambda: b""), threading.Event())


def test_repeated_fields_are_one_list_and_cookies_one_cookie_header():
    made = environ([("x-forwarded-for", "203.0.113.7"), ("cookie", "a=1"), ("x-forwarded-for", "10.0.0.1"),
                    ("cookie", "b=2"), ("accept", "*/*")])
    assert made["HTTP_X_FORWARDED_FOR"] == "203.0.113.7, 10.0.0.1"
    assert made["HTTP_COOKIE"] == "a=1; b=2"
    assert made["HTTP_ACCEPT"] == "*/*"


def test_the_body_fields_are_taken_once_the_first_time():
    made = environ([("content-type", "application/x-www-form-urlencoded"), ("content-length", "12"),
                    ("content-type", "text/plain"), ("content-length", "99")])
    assert made["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert made["CONTENT_LENGTH"] == "12"
    assert "HTTP_CONTENT_TYPE" not in made and "HTTP_CONTENT_LENGTH" not in made


def test_the_request_line_and_the_peers():
    made = environ([("host", "localhost")], path="/malakoff/activate/é")
    assert made["REQUEST_METHOD"] == "POST"
    # PEP 3333: the path as bytes, each read as one latin-1 character.
    assert made["PATH_INFO"] == "/malakoff/activate/é".encode().decode("latin-1")
    assert made["QUERY_STRING"] == "a=1"
    assert (made["SERVER_NAME"], made["SERVER_PORT"]) == ("127.0.0.1", "8000")
    assert (made["REMOTE_ADDR"], made["REMOTE_PORT"]) == ("::1", "51234")
    assert made["HTTP_HOST"] == "localhost"
    assert made["wsgi.url_scheme"] == "http"
    assert isinstance(made[CLIENT_GONE], threading.Event)
