"""Every email and SMS exists in French and in English, in the language ``locale_for`` chose."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2] / "templates"
# Every message (a folder with its subject); email/footer ends them all.
EMAILS = sorted(path.name for path in (ROOT / "email").iterdir() if (path / "subject.txt").exists())
SMS = sorted(path.stem for path in (ROOT / "sms").glob("*.txt"))
# Everything any template reads, with long values where length matters (SMS).
VALUES = {
    "code": "482913", "ttl_minutes": 10, "hours": 72, "minutes": 30,
    "activation_url": "https://id.example.org/malakoff/activate/abc",
    "reset_url": "https://id.example.org/malakoff/forgot-password",
    "login_url": "https://id.example.org/malakoff/login",
    "account_url": "https://id.example.org/malakoff/account",
    "member_number": "12345678", "email": "jeanne.martin@example.org",
    "masked_email": "j•••n@example.org", "last_digits": "88", "device": "Firefox — Windows",
    "when": datetime(2026, 3, 14, 8, 5), "name": "Pixel 8", "legacy": True,
    "cutoff_on": date(2027, 6, 30),
}
# GSM 03.38 basic alphabet: an SMS of 160 of these characters is one segment.
GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
           "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
FRENCH = re.compile(r"[àâçéèêëîïôûùœ]|\b(?:le|la|les|de|des|du|un|une|et|est|vous|votre|vos|pour|"
                    r"avec|sur|ce|cette|Bonjour|cordialement)\b", re.IGNORECASE)


@pytest.fixture(params=["malakoff", "miel"])
def tenant(request, app):
    return app.extensions["idp"].tenants[request.param]


@pytest.fixture
def queue(app, db, channels, tenant):
    """queue(channel, template, locale): the message as the page's language ``locale`` makes it."""

    def make(channel, template, locale):
        messages = channels(current_locale=lambda: locale).messages(db)
        recipient = VALUES["email"] if channel == "email" else "+33612345688"
        return messages.queue(tenant, channel, template, recipient, **VALUES)

    with app.app_context():
        yield make
    db.rollback()


def _without_names(text: str, tenant) -> str:
    """The brand, the portal's name and the support's postal address are French in both
    languages: they are names."""
    for line in tenant.support.postal_address:
        text = text.replace(line, "")
    return text.replace(tenant.brand, "").replace(tenant.portal_name, "").replace(
        VALUES["masked_email"], "")


@pytest.mark.parametrize("template", EMAILS)
def test_every_email_exists_in_english_with_nothing_left_in_french(queue, tenant, template):
    french, english = queue("email", template, "fr"), queue("email", template, "en")
    assert english.subject != french.subject
    assert english.body_text != french.body_text
    for part in (english.subject, english.body_text):
        assert not FRENCH.search(_without_names(part, tenant)), part
    assert french.body_text.startswith("Bonjour,") and english.body_text.startswith("Hello,")
    assert tenant.brand in english.body_text  # the brand is a name: never translated
    if english.body_html is not None:
        assert '<html lang="en">' in english.body_html and '<html lang="fr">' in french.body_html
        text = re.sub(r"<[^>]+>", " ", english.body_html)
        assert not FRENCH.search(_without_names(text, tenant)), text


@pytest.mark.parametrize("template", SMS)
@pytest.mark.parametrize("locale", ["fr", "en"])
def test_every_sms_fits_one_segment_in_both_languages(queue, tenant, template, locale):
    text = queue("sms", template, locale).body_text
    assert len(text) <= 160, text
    assert set(text) <= GSM7, set(text) - GSM7
    assert tenant.brand in text
    # Codes, except the notices to a number on file (a registration or activation elsewhere).
    assert (VALUES["code"] in text) is not template.endswith("_notice")


@pytest.mark.parametrize("template", SMS)
def test_every_sms_exists_in_english(queue, tenant, template):
    french, english = queue("sms", template, "fr"), queue("sms", template, "en")
    assert english.body_text != french.body_text
    assert not FRENCH.search(_without_names(english.body_text, tenant)), english.body_text


def test_the_language_is_the_pages_else_the_members_else_the_tenants(app, db, channels, tenant):
    messages = channels(current_locale=lambda: "en").messages(db)
    assert messages.locale_for(tenant) == "en"
    assert messages.locale_for(tenant, SimpleNamespace(locale="fr")) == "fr"
    assert messages.locale_for(tenant, SimpleNamespace(locale=None)) == tenant.default_locale
    assert messages.locale_for(tenant, SimpleNamespace(locale="de")) == tenant.default_locale
    outside_a_request = channels(current_locale=lambda: None).messages(db)
    assert outside_a_request.locale_for(tenant) == tenant.default_locale
    assert outside_a_request.locale_for(tenant, SimpleNamespace(locale="en")) == "en"
