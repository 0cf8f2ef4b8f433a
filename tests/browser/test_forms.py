"""Forms are sent once (idp/static/forms.js): a second press while the first sending is on its
way sends nothing, unless no answer came for ten seconds (headless Chromium)."""

from __future__ import annotations

import contextlib
import json
import time

import pytest
from playwright.sync_api import Error, expect

pytestmark = pytest.mark.browser

# In every page of the test: the page's clock moved on by the test (window.later), and each
# press's outcome noted, once forms.js had its say, where the next page can read it.
PRESSES = """(() => {
  let offset = 0;
  const now = Date.now.bind(Date);
  Date.now = () => now() + offset;
  window.later = (ms) => { offset += ms; };
  window.addEventListener("submit", (event) => {
    const presses = JSON.parse(sessionStorage.getItem("presses") || "[]");
    presses.push(event.defaultPrevented ? "held back" : "sent");
    sessionStorage.setItem("presses", JSON.stringify(presses));
  });
})();"""

# Three presses while no answer comes: at once, 9 seconds on, 11 seconds on.
PRESS_THRICE = """() => {
  const button = document.querySelector("main form button[type=submit]");
  button.click();
  setTimeout(() => {
    window.later(9000);
    button.click();
    setTimeout(() => { window.later(2000); button.click(); }, 200);
  }, 200);
}"""


def test_a_form_left_without_an_answer_for_ten_seconds_can_be_sent_again(page, live_secure):
    letter = f"{live_secure.base_url}/malakoff/register/letter"
    page.add_init_script(PRESSES)
    page.goto(letter)
    page.get_by_label("Numéro d’adhérent").fill("77889900")
    page.get_by_label("Code reçu par courrier").fill("ABCD-EFGH")
    held = []
    page.route("**/register/letter", lambda route: held.append(route) if route.request.method == "POST"
               else route.continue_())
    # Pressed as a member does, the page still there while its sending is on its way (Playwright's
    # own click would wait for the navigation to end).
    page.evaluate(PRESS_THRICE)
    deadline = time.monotonic() + 10
    while len(held) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    page.wait_for_timeout(500)  # a third sending would have come by now
    assert [route.request.url for route in held] == [letter, letter]
    for route in held:
        with contextlib.suppress(Error):  # the navigation the first began was replaced
            route.continue_()
    expect(page.locator("main")).to_contain_text("Ce code ne correspond pas à ce numéro d’adhérent")
    assert json.loads(page.evaluate("sessionStorage.getItem('presses')")) == ["sent", "held back", "sent"]
