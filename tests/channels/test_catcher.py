"""`idp catcher`: the trial stack's stand-in for the SMS gateway (and any channel that POSTs JSON)
receives what the real sender posts, and shows it."""

from __future__ import annotations

import threading

import pytest
import requests

from idp.catcher import Catcher, make_server
from idp.channels.senders import HttpSmsSender


@pytest.fixture
def catcher():
    lines: list[str] = []
    server = make_server("127.0.0.1", 0, Catcher(), echo=lines.append)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", lines
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_the_sms_gateway_sender_posts_to_the_catcher_which_shows_it(catcher):
    url, lines = catcher
    HttpSmsSender(f"{url}/sms", "trial-token", "MALAKOFF", timeout=5).send(
        "+33612345678", "Votre code : 482913")
    assert lines == ["#1 sms to +33612345678: Votre code : 482913"]
    [caught] = requests.get(f"{url}/sms.json", timeout=5).json()
    assert caught["body"] == {"to": "+33612345678", "from": "MALAKOFF", "text": "Votre code : 482913"}
    page = requests.get(f"{url}/", timeout=5)
    assert page.status_code == 200 and "Votre code : 482913" in page.text


def test_any_channel_posts_json_on_its_own_path(catcher):
    url, lines = catcher
    letter = {"address_lines": ["Mme Jeanne Martin", "<b>1 rue</b>"], "reference": "L-1"}
    answer = requests.post(f"{url}/letter", json=letter, timeout=5)
    assert answer.status_code == 202
    assert requests.get(f"{url}/letter.json", timeout=5).json()[0]["body"] == letter
    assert requests.get(f"{url}/sms.json", timeout=5).json() == []
    assert "&lt;b&gt;1 rue&lt;/b&gt;" in requests.get(f"{url}/", timeout=5).text
    assert lines[0].startswith("#1 letter: ")


@pytest.mark.parametrize(("path", "data", "headers", "status"), [
    ("/sms", b"not json", {"Content-Type": "application/json"}, 400),
    ("/sms", b'{"to": "+33612345678"}', {"Content-Type": "text/plain"}, 415),
    ("/sms/more", b"{}", {"Content-Type": "application/json"}, 404),
    ("/sms", b"[" * 300_000, {"Content-Type": "application/json"}, 413),
])
def test_what_is_not_a_json_post_to_a_channel_is_refused_and_kept_nowhere(catcher, path, data,
                                                                          headers, status):
    url, lines = catcher
    answer = requests.post(f"{url}{path}", data=data, headers=headers, timeout=5)
    assert answer.status_code == status
    assert lines == []
    assert requests.get(f"{url}/sms.json", timeout=5).json() == []
