"""The demo's outbox in the browser: a message's long link is a link, and wraps at 360 px."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from idp.channels.models import Message
from tests.browser.conftest import screenshot

pytestmark = pytest.mark.browser


def test_a_long_activation_link_in_the_outbox_is_followed_and_does_not_scroll_sideways(
        page, live_secure, check, db):
    link = f"{live_secure.base_url}/malakoff/activate/{'Ab3-' * 40}"
    db.add(Message(tenant="malakoff", channel="email", template="activation", recipient="a@example.org",
                   subject="Activez votre compte", body_text=f"Pour activer votre compte\u00a0:\n{link}\n"))
    db.commit()
    page.goto(f"{live_secure.base_url}/_outbox")
    expect(page.get_by_role("link", name=link)).to_have_attribute("href", link)
    check(page, "outbox")  # among the checks: no sideways scrolling at 360 px
    page.set_viewport_size({"width": 360, "height": 800})
    screenshot(page, "outbox-360")
