"""Screenshots of every hosted page, for each tenant, at phone and desktop widths.

    .venv/bin/python -m tests.browser.screenshots --out screenshots/

Starts the provider and both demo portals in this process on free local ports (a temporary
SQLite database, the in-process store, the outbox), then walks each tenant through the same
journey steps as the browser tests (tests/browser/journeys.py): portal, registration, sign-in
and its errors, codes, terms, account page, password and mobile changes, passkeys (added with
Chromium's virtual authenticator, renamed, "Me connecter en 1 clic", removed), the warnings before
a time limit (the sign-in's, a code's, a form page's), recovery, consent, logout, the accessibility
statement, error pages. Each page is written once per width as ``<tenant>-<page>-<width>.png``.
Needs the test extra (playwright) and Debian's Chromium.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from tests.browser.conftest import CHROMIUM, FLAGS, open_page
from tests.browser.journeys import Member, demo_account, virtual_authenticator, without_passkey_autofill
from tests.conftest import provider_settings, start_live

WIDTHS = (360, 1280)
NEW_PASSWORD = "Granit-Rose-Bastion-48!"


class Camera:
    """A journey checkpoint that photographs each page once, at every width."""

    def __init__(self, out: Path, widths: tuple[int, ...]):
        self.out = out
        self.widths = widths
        self.written: list[Path] = []
        self.seen: set[str] = set()

    def __call__(self, page, name: str) -> None:
        if name in self.seen:
            return
        self.seen.add(name)
        original = page.viewport_size
        for width in self.widths:
            page.set_viewport_size({"width": width, "height": 800})
            path = self.out / f"{name}-{width}.png"
            page.screenshot(path=str(path), full_page=True)
            self.written.append(path)
        page.set_viewport_size(original)


def tour(member: Member) -> None:
    """Every page a member of this tenant can meet, in an order that reaches them all."""
    tenant = member.tenant
    member.starts_registration()
    if tenant == "miel":
        member.registers_by_nir("f.ndiaye@example.org")
        member.activates(NEW_PASSWORD, birth_date="30/08/1962")
        identifier, given_name = "76543210", "Françoise"
    else:
        member.registers_by_member_number("jp.dupont-morel@example.org")
        member.activates(NEW_PASSWORD)
        identifier, given_name = "jp.dupont-morel@example.org", "Jean-Pierre"

    member.opens_portal()
    member.signs_in_from_portal()
    member.is_asked_password()
    member.gives_wrong_password(identifier)
    member.gives_password(identifier, NEW_PASSWORD)
    member.receives_code("sms")
    member.enters_code("sms", remember=True, first_wrong=True)
    if tenant == "miel":
        member.accepts_terms()
    member.is_back_at_portal(given_name)

    member.opens_account(given_name)
    member.reads_accessibility_statement()
    member.opens_account(given_name)
    member.revokes_device()
    if tenant == "miel":
        member.changes_preferences()
    member.changes_mobile(NEW_PASSWORD, "06 98 76 54 32", "+33698765432")
    member.opens_portal()
    member.logs_out()

    account = demo_account(tenant)
    member.refuses_third_party(account, "Comparateur Santé")

    member.page.goto(f"{member.provider}/login")
    member.forgets_password(account.identifier)
    member.resets_password("Ressac-Basalte-Violet-27!")
    if tenant == "miel":
        member.page.goto(f"{member.provider}/forgot-password")
        member.forgets_identifier("1 56 04 44 109 073 14", "02/04/1956", "44", "Lefèvre", "Étienne")

    if tenant == "malakoff":  # a member without contacts on file: the code by post
        member.opens_portal()
        member.starts_registration()
        member.registers_without_contacts_on_file("fx.muller@example.org", "06 12 34 56 79")
        member.types_the_code_of_the_letter("77889900")

    member.page.goto(f"{member.provider}/activate/no-longer-valid")
    member.sees("activation-expired")
    member.page.goto(f"{member.provider}/no-such-page")
    member.sees("not-found")

    # Passkeys, Chromium's virtual authenticator playing the phone's: add, rename, "Me connecter
    # en 1 clic", remove.
    virtual_authenticator(member.page)
    member.signs_in(identifier, NEW_PASSWORD, given_name, "email")
    member.goes_back_once_signed_in(given_name)
    member.opens_account(given_name)
    member.adds_passkey(NEW_PASSWORD, "Mon téléphone")
    member.renames_passkey("Mon téléphone", "Téléphone de la cuisine")
    member.opens_portal()
    member.logs_out()
    without_passkey_autofill(member.page)
    member.signs_in_from_portal()
    member.is_asked_password()
    member.sees("passkey-sign-in")
    member.signs_in_with_passkey()
    member.is_back_at_portal(given_name)
    member.opens_account(given_name)
    member.removes_passkey("Téléphone de la cuisine")
    member.opens_portal()
    member.logs_out()

    # Time limits: the page's clock jumps to each warning; the server's time is untouched.
    member.page.clock.install()
    member.starts_sign_in()
    member.asks_more_time()
    member.runs_out_of_time_and_starts_again()
    member.gives_password(identifier, NEW_PASSWORD)
    member.receives_code("email")
    member.is_warned_the_code_expires()
    member.enters_code("email")
    member.is_back_at_portal(given_name)
    member.opens_account(given_name)
    member.is_warned_the_page_expires("account")
    member.keeps_the_page("account")
    member.lets_the_page_expire("account")
    member.sees("account")
    member.changes_password(NEW_PASSWORD, "Lune-Rousse-Cascade-93!")
    member.deletes_account("Lune-Rousse-Cascade-93!")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.browser.screenshots",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("screenshots"), help="folder to write into")
    parser.add_argument("--tenant", action="append", choices=["malakoff", "miel"],
                        help="only this tenant (repeatable; default: both)")
    parser.add_argument("--width", action="append", type=int,
                        help=f"page width in CSS pixels (repeatable; default: {WIDTHS})")
    args = parser.parse_args(argv)
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415 - a test extra
    except ImportError:
        parser.exit(2, "playwright is missing: pip install -e '.[test]' (see README, Running the tests)\n")
    if not CHROMIUM.exists():
        parser.exit(2, f"no Chromium at {CHROMIUM}: apt-get install chromium (or set IDP_TEST_CHROMIUM)\n")

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    args.out.mkdir(parents=True, exist_ok=True)
    camera = Camera(args.out, tuple(args.width or WIDTHS))
    with tempfile.TemporaryDirectory(prefix="idp-screenshots-") as scratch:
        settings = provider_settings(f"sqlite:///{scratch}/idp.sqlite3", Path(scratch) / "keys", redis_url="")
        live, servers = start_live(settings, cookie_secure=True)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
                for tenant in args.tenant or ["malakoff", "miel"]:
                    page = open_page(browser)
                    tour(Member(page, live, tenant, camera))
                    page.context.close()
                browser.close()
        finally:
            servers.stop()
            live.app.extensions["idp"].database.engine.dispose()
    print(f"{len(camera.written)} screenshots in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
