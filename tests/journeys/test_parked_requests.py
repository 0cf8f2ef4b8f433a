"""Authorization requests parked while the member signs in: each tab resumes its own, and a
browser keeps a bounded number of them."""

from __future__ import annotations

from idp.oidc.interactions import MAX_OPEN
from tests.flows import interaction_of, query, sign_in_over


def _page_of(flow, answer):
    """The sign-in page at its own address, of the request an answer parked."""
    return flow.http.get(f"/{flow.tenant}/login", query_string={"interaction": interaction_of(answer.data)})


def test_two_tabs_each_resume_their_own_request(flow):
    first = flow.authorize(prompt="login", state="st-first")
    second = flow.authorize(prompt="login", state="st-second")

    signed_in = flow.login(second)

    assert query(signed_in.headers["Location"])["state"] == "st-second"
    # The other tab's request is still parked: signing in there answers it, not the first one.
    again = flow.login(first)
    assert query(again.headers["Location"])["state"] == "st-first"
    # Each was answered once.
    for answered in (first, second):
        sign_in_over(_page_of(flow, answered))


def test_the_oldest_request_is_forgotten_past_the_bound(flow):
    started = [flow.authorize(prompt="login", state=f"st-{n}") for n in range(MAX_OPEN + 1)]

    assert _page_of(flow, started[0]).status_code == 400
    signed_in = flow.login(started[1])
    assert query(signed_in.headers["Location"])["state"] == "st-1"
