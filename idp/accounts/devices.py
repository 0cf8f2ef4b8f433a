"""A browser's User-Agent in words ("Chrome sur Android"): the account page's sessions, trusted
browsers and recent sign-ins, and the new-browser email.

A small parser rather than a library: the label is shown to the member only, never used to
decide anything, and a dozen families cover the browsers members use. A library's regular
expression database (ua-parser's) would need updates of its own to stay right; this needs a
new line when a new browser family matters, and says "Navigateur inconnu" until then.
Order matters: Edge and Opera also say "Chrome", Chrome also says "Safari".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask_babel import gettext as _

_BROWSERS = (
    ("Edge", re.compile(r"\b(?:Edg|EdgA|EdgiOS|Edge)/")),
    ("Opera", re.compile(r"\b(?:OPR|OPiOS|Opera)/")),
    ("Samsung Internet", re.compile(r"\bSamsungBrowser/")),
    ("Firefox", re.compile(r"\b(?:Firefox|FxiOS)/")),
    ("Chrome", re.compile(r"\b(?:Chrome|CriOS|Chromium)/")),
    ("Safari", re.compile(r"\bVersion/[\d.]+.*\bSafari/")),
)
_SYSTEMS = (
    ("iPadOS", re.compile(r"\biPad\b")),
    ("iOS", re.compile(r"\b(?:iPhone|iPod)\b")),
    ("Android", re.compile(r"\bAndroid\b")),
    ("ChromeOS", re.compile(r"\bCrOS\b")),
    ("Windows", re.compile(r"\bWindows\b")),
    ("macOS", re.compile(r"\bMacintosh\b|\bMac OS X\b")),
    ("Linux", re.compile(r"\bLinux\b")),
)


@dataclass(frozen=True)
class Device:
    """What a User-Agent says, as names (None: not recognised)."""

    browser: str | None
    system: str | None


def parse_user_agent(user_agent: str | None) -> Device:
    text = (user_agent or "")[:500]
    browser = next((name for name, pattern in _BROWSERS if pattern.search(text)), None)
    system = next((name for name, pattern in _SYSTEMS if pattern.search(text)), None)
    return Device(browser, system)


def device_in_words(user_agent: str | None) -> str:
    """"Chrome sur Android", in the page's language; what is not recognised is said so."""
    device = parse_user_agent(user_agent)
    if device.browser and device.system:
        return _("%(browser)s sur %(system)s", browser=device.browser, system=device.system)
    if device.browser or device.system:
        return device.browser or _("Navigateur sur %(system)s", system=device.system)
    return _("Navigateur inconnu")
