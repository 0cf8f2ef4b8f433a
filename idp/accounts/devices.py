"""A browser's User-Agent in words ("Chrome sur Android"): the account page's sessions, trusted
browsers and recent sign-ins, and the new-browser email.

The User-Agent is read by ua-parser, the Python implementation of the maintained uap-core
regular expressions (their releases come as the ua-parser-builtins package): browsers change how
they announce themselves faster than a hand-written parser would follow, and uap-core already
knows which "Chrome" is an Edge, an Opera or a web view. Its families are then said with the
short names members know ("Chrome Mobile" is Chrome, "Mac OS X" is macOS); a family not named
here is said as unknown ("Navigateur inconnu", "Navigateur sur Android").

The label is shown to the member only, never used to decide anything. The library and its
compiled expressions (about 2 MiB) are loaded at the first label, not by every worker at
start-up. A label is a few hundred expressions tried in turn (about a millisecond, up to ten
for 500 characters of garbage), so the User-Agent is bounded to 500 characters and labels are
remembered per User-Agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from flask_babel import gettext as _

_LONGEST = 500
_BROWSERS = {
    "Chrome": "Chrome", "Chrome Mobile": "Chrome", "Chrome Mobile iOS": "Chrome",
    "Chrome Mobile WebView": "Chrome", "HeadlessChrome": "Chrome", "Chromium": "Chrome",
    "Safari": "Safari", "Mobile Safari": "Safari", "Mobile Safari UI/WKWebView": "Safari",
    "Firefox": "Firefox", "Firefox Mobile": "Firefox", "Firefox iOS": "Firefox",
    "Edge": "Edge", "Edge Mobile": "Edge",
    "Opera": "Opera", "Opera Mobile": "Opera",
    "Samsung Internet": "Samsung Internet",
}
_LINUXES = ("Linux", "Ubuntu", "Kubuntu", "Lubuntu", "Debian", "Linux Mint", "Fedora", "Red Hat",
            "CentOS", "Arch Linux", "openSUSE", "SUSE", "Gentoo", "Slackware", "Mageia", "Mandriva",
            "PCLinuxOS")
_SYSTEMS = {
    "Windows": "Windows", "Mac OS X": "macOS", "iOS": "iOS", "Android": "Android",
    "Chrome OS": "ChromeOS", **dict.fromkeys(_LINUXES, "Linux"),
}


@dataclass(frozen=True)
class Device:
    """What a User-Agent says, as names (None: not recognised)."""

    browser: str | None
    system: str | None


def parse_user_agent(user_agent: str | None) -> Device:
    return _parsed((user_agent or "")[:_LONGEST])


@lru_cache(maxsize=1024)
def _parsed(text: str) -> Device:
    import ua_parser  # noqa: PLC0415 - its expressions, loaded at the first label

    found_browser = ua_parser.parse_user_agent(text)
    found_system = ua_parser.parse_os(text)
    browser = _BROWSERS.get(found_browser.family) if found_browser else None
    system = _SYSTEMS.get(found_system.family) if found_system else None
    if system == "iOS" and (found_device := ua_parser.parse_device(text)) and found_device.family == "iPad":
        system = "iPadOS"
    return Device(browser, system)


def device_in_words(user_agent: str | None) -> str:
    """"Chrome sur Android", in the page's language; what is not recognised is said so."""
    device = parse_user_agent(user_agent)
    if device.browser and device.system:
        return _("%(browser)s sur %(system)s", browser=device.browser, system=device.system)
    if device.browser or device.system:
        return device.browser or _("Navigateur sur %(system)s", system=device.system)
    return _("Navigateur inconnu")
