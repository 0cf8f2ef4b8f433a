"""A real headless Chromium (Debian's package) driven by Playwright; never a downloaded browser."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser.a11y import AccessibilityCheck, AxeUnavailable, axe_source
from tests.browser.journeys import Member
from tests.conftest import IN_CI, _reset, start_live

CHROMIUM = Path(os.environ.get("IDP_TEST_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots" / "tests"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def pytest_collection_modifyitems(config, items):
    if CHROMIUM.exists():
        return
    if IN_CI:
        raise pytest.UsageError(f"CI=true but no Chromium at {CHROMIUM}: install Debian's chromium")
    skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only when a browser exists

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def check():
    """check(page, name): axe-core finds nothing, the page reflows, targets are large enough."""
    try:
        return AccessibilityCheck(axe_source())
    except AxeUnavailable as exc:
        if IN_CI:
            pytest.fail(f"CI=true but axe-core could not be installed: {exc}")
        pytest.skip(f"axe-core unavailable: {exc}")


def open_page(browser, locale: str = "fr-FR", check: AccessibilityCheck | None = None):
    """A page in a new browser context (its own cookies), at desktop size; axe-core in it if checked."""
    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 800})
    if check is not None:
        check.attach(context)
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


@pytest.fixture
def page(chromium, check):
    page = open_page(chromium, check=check)
    yield page
    page.context.close()


@pytest.fixture
def live_secure(settings):
    """The provider with its production cookies (Secure, __Host-): Chromium keeps them on localhost."""
    running, servers = start_live(settings, cookie_secure=True)
    yield running
    servers.stop()
    _reset(running.app)



@pytest.fixture
def browse(page, live_secure, check):
    """browse(tenant): a member's browser on that tenant's provider and portal, every page checked."""
    return lambda tenant: Member(page, live_secure, tenant, check)


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
