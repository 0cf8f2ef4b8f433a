"""The gate's limits on header fields (idp.web.gate), counted from the environ: the fields are
those werkzeug lists for the request, each sized as ``Name: value``."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from werkzeug.datastructures import EnvironHeaders

from idp.web import gate

NAMES = st.sampled_from(["HTTP_HOST", "HTTP_ACCEPT", "HTTP_AUTHORIZATION", "HTTP_X_FORWARDED_FOR",
                         "HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH", "CONTENT_TYPE", "CONTENT_LENGTH",
                         "PATH_INFO", "QUERY_STRING", "REMOTE_ADDR"])


def listed_too_large(environ: dict[str, str]) -> bool:
    """The rule as written on the fields werkzeug lists."""
    sizes = [len(f"{name}: {value}") for name, value in EnvironHeaders(environ).items()]
    return (len(sizes) > gate.MAX_HEADER_FIELDS or sum(sizes) > gate.MAX_HEADER_BYTES
            or max(sizes, default=0) > gate.MAX_VALUE_LENGTH)


@given(fields=st.lists(st.tuples(st.one_of(NAMES, st.from_regex(r"HTTP_X_[A-Z_]{1,20}", fullmatch=True)),
                                 st.one_of(st.just(""), st.text(max_size=20),
                                           st.integers(gate.MAX_VALUE_LENGTH - 40, gate.MAX_VALUE_LENGTH + 5)
                                           .map("v".__mul__))),
                       max_size=gate.MAX_HEADER_FIELDS + 3),
       many=st.integers(0, gate.MAX_HEADER_FIELDS + 2))
def test_the_fields_are_counted_and_sized_as_werkzeug_lists_them(fields, many):
    environ = {f"HTTP_X_FILLER_{number}": "x" * 900 for number in range(many)}
    environ.update(fields)
    assert gate.headers_too_large(environ) == listed_too_large(environ)


def test_at_the_limits():
    fields = {f"HTTP_X_F{number:02}": "x" for number in range(gate.MAX_HEADER_FIELDS)}
    assert not gate.headers_too_large(fields)
    assert gate.headers_too_large({**fields, "CONTENT_TYPE": "text/plain"})
    # An empty body field is not one; a header field's copy of it is not counted.
    assert not gate.headers_too_large({**fields, "CONTENT_LENGTH": "", "HTTP_CONTENT_LENGTH": "3"})
    # "X-Long: " and the value: the longest field taken.
    longest = {"HTTP_X_LONG": "v" * (gate.MAX_VALUE_LENGTH - len("X-Long: "))}
    assert not gate.headers_too_large(longest)
    assert gate.headers_too_large({"HTTP_X_LONG": longest["HTTP_X_LONG"] + "v"})
