"""A browser's User-Agent in words, for the member's list of sessions."""

from __future__ import annotations

import pytest

from idp.accounts.devices import Device, device_in_words, parse_user_agent


@pytest.mark.parametrize(("user_agent", "device"), [
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0.0.0 Mobile Safari/537.36", Device("Chrome", "Android")),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.5 Mobile/15E148 Safari/604.1", Device("Safari", "iOS")),
    ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1", Device("Chrome", "iPadOS")),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.68", Device("Edge", "Windows")),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
     Device("Firefox", "Windows")),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.5 Safari/605.1.15", Device("Safari", "macOS")),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
     "Safari/537.36 OPR/111.0.0.0", Device("Opera", "Linux")),
    ("Mozilla/5.0 (Linux; Android 14; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36", Device("Samsung Internet", "Android")),
    ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0.0.0 Safari/537.36", Device("Chrome", "ChromeOS")),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "HeadlessChrome/126.0.6478.126 Safari/537.36", Device("Chrome", "Linux")),
    ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.5 Mobile/15E148 Safari/604.1", Device("Safari", "iPadOS")),
    ("Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
     "SamsungBrowser/26.0 Chrome/122.0.0.0 Safari/537.36", Device("Samsung Internet", "Android")),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0.0.0 Mobile Safari/537.36 EdgA/126.0.2592.80", Device("Edge", "Android")),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Version/4.0 Chrome/126.0.0.0 Mobile Safari/537.36", Device("Chrome", "Android")),
    ("Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0", Device("Firefox", "Android")),
    ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
     Device("Firefox", "Linux")),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0.0.0 Mobile Safari/537.36 SomeBrowser/1.0", Device("Chrome", "Android")),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0.0.0 Safari/537.36 Vivaldi/6.8.3381.48", Device(None, "Windows")),
    ("curl/8.5.0", Device(None, None)),
    ("\x00(;;(( garbage \ud800 ))", Device(None, None)),
    ("Mozilla/5.0 (" + "A" * 100_000, Device(None, None)),
    ("", Device(None, None)),
    (None, Device(None, None)),
])
def test_user_agents_in_words(user_agent, device):
    assert parse_user_agent(user_agent) == device


@pytest.mark.parametrize(("user_agent", "words"), [
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0.0.0 Mobile Safari/537.36", "Chrome sur Android"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0.0.0 Safari/537.36 Vivaldi/6.8.3381.48", "Navigateur sur Windows"),
    ("curl/8.5.0", "Navigateur inconnu"),
])
def test_devices_said_in_french(app, user_agent, words):
    with app.test_request_context(headers={"Accept-Language": "fr"}):
        assert device_in_words(user_agent) == words
