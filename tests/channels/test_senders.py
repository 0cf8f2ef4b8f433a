"""The real channels against real local servers: SMTP (aiosmtpd) and an HTTP SMS gateway."""

from __future__ import annotations

import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from idp.channels.senders import (
    DeliveryError,
    EmailSender,
    HttpSmsSender,
    OutboxEmailSender,
    OutboxSmsSender,
    SmsSender,
    SmtpEmailSender,
    build_senders,
    mask_recipient,
)
from idp.config import load_settings
from tests.conftest import on_free_ports
from tests.servers import GATEWAY_TOKEN, MAIL_FROM, SMTP_PASSWORD, SMTP_USER, SmtpServer

TEXT = "Votre code : 482913\n"
HTML = "<p>Votre code : <strong>482913</strong></p>\n"


def _content(message, subtype: str) -> str:
    """A body part's text, with the wire's CRLF line ends back to LF."""
    return message.get_body((subtype,)).get_content().replace("\r\n", "\n")


def test_plain_smtp_sends_a_multipart_alternative(smtp_server):
    smtp_server.sender().send("jeanne@example.org", "Votre code de connexion", TEXT, HTML)

    [received] = smtp_server.inbox
    assert received.recipients == ["jeanne@example.org"]
    assert received.sender == "no-reply@example.org"
    message = received.message
    assert message["From"] == MAIL_FROM
    assert message["To"] == "jeanne@example.org"
    assert message["Subject"] == "Votre code de connexion"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@example.org>")
    assert message.get_content_type() == "multipart/alternative"
    assert _content(message, "plain") == TEXT
    assert _content(message, "html") == HTML
    assert received.login is None


def test_text_only_email_when_there_is_no_html(smtp_server):
    smtp_server.sender().send("jeanne@example.org", "Sujet accentué é", TEXT, None)
    message = smtp_server.inbox[0].message
    assert message.get_content_type() == "text/plain"
    assert message["Subject"] == "Sujet accentué é"


def test_accented_sender_name_subject_and_bodies_arrive_as_written(smtp_server):
    """Non-ASCII in the sender's name, a subject long enough to be folded, and the bodies: each
    is encoded for the wire and reads back as written."""
    subject = "Votre demande de réinitialisation du mot de passe de l'Espace Affilié — à faire sous 1 heure"
    text = "Bonjour Hélène,\nVotre code : 482913. " + "Il expire bientôt. " * 10 + "\n"
    html = "<p>Bonjour Hélène, votre code : <strong>482913</strong> (« à usage unique »)</p>\n"
    sender = SmtpEmailSender("127.0.0.1", smtp_server.port, security="none", timeout=5,
                             mail_from="Miel mutuelle — Espace Affilié <no-reply@miel.example>")
    sender.send("helene@example.org", subject, text, html)

    [received] = smtp_server.inbox
    assert received.sender == "no-reply@miel.example"
    message = received.message
    assert message["From"] == "Miel mutuelle — Espace Affilié <no-reply@miel.example>"
    assert message["Subject"] == subject
    assert message["Message-ID"].endswith("@miel.example>")
    assert _content(message, "plain") == text
    assert _content(message, "html") == html
    assert all(len(line) <= 998 for line in received.raw.splitlines())  # RFC 5322 2.1.1


@pytest.mark.parametrize("field", ["recipient", "subject"])
def test_a_header_that_would_span_lines_is_refused_for_good(smtp_server, field):
    values = {"recipient": "jeanne@example.org", "subject": "Sujet"}
    values[field] += "\r\nBcc: someone@example.net"
    with pytest.raises(DeliveryError, match="span lines") as caught:
        smtp_server.sender().send(values["recipient"], values["subject"], TEXT, HTML)
    assert caught.value.permanent
    assert not smtp_server.inbox


@pytest.mark.parametrize("recipient", ["jeanne@exämple.fr", "hélène@example.fr"])
def test_an_address_that_is_not_ascii_goes_as_written_to_a_relay_offering_smtputf8(recipient):
    server = on_free_ports(lambda: SmtpServer(smtputf8=True).start())
    try:
        server.sender().send(recipient, "Votre code de connexion", TEXT, HTML)
    finally:
        server.stop()
    [received] = server.inbox
    assert received.recipients == [recipient]
    assert received.message["To"] == recipient
    assert received.message["From"] == MAIL_FROM
    assert _content(received.message, "plain") == TEXT
    assert _content(received.message, "html") == HTML


def test_an_address_that_is_not_ascii_fails_for_good_at_a_relay_without_smtputf8(smtp_server):
    with pytest.raises(DeliveryError, match="does not offer SMTPUTF8") as caught:
        smtp_server.sender().send("hélène@example.fr", "Votre code de connexion", TEXT, HTML)
    assert caught.value.permanent
    assert not smtp_server.inbox


def test_starttls_with_login(smtp_servers):
    server = smtp_servers("starttls")
    server.sender("starttls", username=SMTP_USER, password=SMTP_PASSWORD).send(
        "jeanne@example.org", "Sujet", TEXT, HTML)
    [received] = server.inbox
    assert received.login == SMTP_USER
    assert _content(received.message, "plain") == TEXT


def test_starttls_server_refuses_mail_without_login(smtp_servers):
    server = smtp_servers("starttls")
    with pytest.raises(DeliveryError) as caught:
        server.sender("starttls").send("jeanne@example.org", "Sujet", TEXT, HTML)
    assert "530" in str(caught.value)
    assert not server.inbox


def test_wrong_password_is_a_delivery_error_without_the_password(smtp_servers):
    server = smtp_servers("starttls")
    sender = server.sender("starttls", username=SMTP_USER, password="not-the-password")
    with pytest.raises(DeliveryError, match="login refused") as caught:
        sender.send("jeanne@example.org", "Sujet", TEXT, HTML)
    assert "not-the-password" not in str(caught.value)
    assert not server.inbox


def test_starttls_never_downgrades_to_plain(smtp_server):
    """A server that does not offer STARTTLS gets nothing, not a cleartext message."""
    with pytest.raises(DeliveryError, match="STARTTLS"):
        smtp_server.sender("starttls").send("jeanne@example.org", "Sujet", TEXT, HTML)
    assert not smtp_server.inbox


def test_untrusted_certificate_is_refused(smtp_servers):
    server = smtp_servers("starttls")
    sender = server.sender("starttls", username=SMTP_USER, password=SMTP_PASSWORD,
                           ssl_context=ssl.create_default_context())
    with pytest.raises(DeliveryError, match="TLS"):
        sender.send("jeanne@example.org", "Sujet", TEXT, HTML)
    assert not server.inbox


def test_implicit_tls(smtp_servers):
    server = smtp_servers("ssl")
    server.sender("ssl").send("jeanne@example.org", "Sujet", TEXT, HTML)
    assert len(server.inbox) == 1


def test_no_server_is_a_delivery_error():
    server = SmtpServer()  # a free port, nothing listening
    with pytest.raises(DeliveryError, match="cannot reach SMTP server") as caught:
        server.sender().send("jeanne@example.org", "Sujet", TEXT, HTML)
    assert not caught.value.permanent


def test_sender_from_settings():
    settings = load_settings({"mail_backend": "smtp", "smtp_host": "relay.example.org",
                              "smtp_port": "465", "smtp_security": "ssl",
                              "smtp_username": "u", "smtp_password": "p",
                              "mail_from": "Miel <noreply@miel.example>"}, environ={})
    email, sms = build_senders(settings)
    assert isinstance(email, SmtpEmailSender)
    assert isinstance(sms, OutboxSmsSender)
    assert (email.host, email.port, email.security, email.username, email.password) == (
        "relay.example.org", 465, "ssl", "u", "p")
    assert email.mail_from == "Miel <noreply@miel.example>"
    assert email.timeout == 10


def test_outbox_senders_by_default_and_http_when_configured():
    email, sms = build_senders(load_settings(environ={}))
    assert isinstance(email, OutboxEmailSender)
    assert isinstance(sms, OutboxSmsSender)
    assert isinstance(email, EmailSender)
    assert isinstance(sms, SmsSender)
    _email, sms = build_senders(load_settings(
        {"sms_backend": "http", "sms_gateway_url": "https://sms.example/v1/sms",
         "sms_gateway_token": "t", "sms_sender": "MIEL"}, environ={}))
    assert isinstance(sms, HttpSmsSender)
    assert (sms.url, sms.token, sms.sender, sms.timeout) == ("https://sms.example/v1/sms", "t",
                                                             "MIEL", 10)
    sms.close()


# -- SMS gateway ------------------------------------------------------------------


def test_sms_is_posted_as_json_with_the_bearer_token(sms_gateway):
    sender = sms_gateway.sender()
    sender.send("+33612345688", "482913 est votre code")
    sender.close()
    [request] = sms_gateway.requests
    assert request.path == "/v1/sms"
    assert request.headers["Authorization"] == f"Bearer {GATEWAY_TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.body == {"to": "+33612345688", "from": "MALAKOFF",
                            "text": "482913 est votre code"}


@pytest.mark.parametrize(("status", "permanent"), [
    (500, False), (503, False), (401, False), (429, False), (400, True), (422, True),
])
def test_sms_gateway_errors(sms_gateway, status, permanent):
    sms_gateway.status = status
    sender = sms_gateway.sender()
    with pytest.raises(DeliveryError, match=f"HTTP {status}") as caught:
        sender.send("+33612345688", "482913 est votre code")
    sender.close()
    assert caught.value.permanent is permanent
    assert "482913" not in str(caught.value)


def test_sms_gateway_redirect_is_not_followed(sms_gateway):
    sms_gateway.status = 302
    sms_gateway.location = "http://127.0.0.1:9/elsewhere"
    sender = sms_gateway.sender()
    with pytest.raises(DeliveryError, match="HTTP 302"):
        sender.send("+33612345688", "texte")
    sender.close()
    assert len(sms_gateway.requests) == 1


def test_sms_gateway_timeout(sms_gateway):
    sms_gateway.delay = 1.0
    sender = sms_gateway.sender(timeout=0.2)
    with pytest.raises(DeliveryError, match="timed out"):
        sender.send("+33612345688", "texte")
    sender.close()


def test_sms_gateway_unreachable():
    sender = HttpSmsSender(f"http://127.0.0.1:{SmtpServer().port}/sms", "t", "MALAKOFF")
    with pytest.raises(DeliveryError, match="cannot reach the SMS gateway"):
        sender.send("+33612345688", "texte")
    sender.close()


def test_recipients_are_masked():
    assert mask_recipient("email", "jeanne.martin@example.org") == "j•••@example.org"
    assert mask_recipient("sms", "+33612345688") == "+336••••••88"
    assert mask_recipient("email", "nobody") == "•••"


def test_messages_in_a_row_go_in_one_session(smtp_server):
    sender = smtp_server.sender()
    for number in range(3):
        sender.send("jeanne@example.org", f"Message {number}", TEXT, HTML)

    assert [received.message["Subject"] for received in smtp_server.inbox] == [
        "Message 0", "Message 1", "Message 2"]
    assert len({received.peer for received in smtp_server.inbox}) == 1
    assert not smtp_server.quits  # kept for the next message


def test_a_tls_session_with_its_login_goes_on_to_the_next_message(smtp_servers):
    server = smtp_servers("starttls")
    sender = server.sender("starttls", username=SMTP_USER, password=SMTP_PASSWORD)
    sender.send("jeanne@example.org", "Premier", TEXT, HTML)
    sender.send("paul@example.org", "Second", TEXT, HTML)

    first, second = server.inbox
    assert first.peer == second.peer
    assert (first.recipients, second.recipients) == (["jeanne@example.org"], ["paul@example.org"])
    assert first.login == second.login == SMTP_USER


def test_a_session_the_relay_has_closed_is_replaced(smtp_server):
    sender = smtp_server.sender()
    sender.send("jeanne@example.org", "Premier", TEXT, HTML)
    smtp_server.stop()  # the relay restarts: its sessions are gone
    smtp_server.start()

    sender.send("jeanne@example.org", "Second", TEXT, HTML)

    first, second = smtp_server.inbox
    assert first.peer != second.peer
    assert second.message["Subject"] == "Second"


def test_an_unused_session_is_closed_and_the_next_message_opens_another(smtp_server):
    sender = smtp_server.sender(keep_seconds=0.2)
    sender.send("jeanne@example.org", "Premier", TEXT, HTML)
    first = smtp_server.inbox[0].peer

    deadline = time.monotonic() + 5
    while not smtp_server.quits and time.monotonic() < deadline:
        time.sleep(0.05)
    assert smtp_server.quits == [first]

    sender.send("jeanne@example.org", "Second", TEXT, HTML)
    assert smtp_server.inbox[1].peer != first


def test_a_session_that_failed_a_message_is_not_used_again(smtp_server):
    sender = smtp_server.sender()
    sender.send("jeanne@example.org", "Premier", TEXT, HTML)
    with pytest.raises(DeliveryError, match="SMTPUTF8"):
        sender.send("hélène@example.fr", "Refusé", TEXT, HTML)

    sender.send("jeanne@example.org", "Second", TEXT, HTML)

    first, second = smtp_server.inbox
    assert first.peer != second.peer
    assert smtp_server.quits == [first.peer]  # ended politely: the relay had answered


def test_the_system_certificate_authorities_are_read_once(smtp_servers, certificate, monkeypatch):
    """Without a context of its own, the sender reads the system's authorities for its first TLS
    session only, not for each message."""
    server = smtp_servers("starttls")
    trusting = certificate.client_context()
    reads: list[int] = []
    monkeypatch.setattr(ssl, "create_default_context", lambda: reads.append(1) or trusting)
    sender = server.sender("starttls", username=SMTP_USER, password=SMTP_PASSWORD,
                           ssl_context=None, keep_seconds=0)  # a new session for each message
    for _ in range(3):
        sender.send("jeanne@example.org", "Sujet", TEXT, HTML)

    assert len({received.peer for received in server.inbox}) == 3
    assert reads == [1]


def test_messages_sent_at_once_each_arrive_once_and_every_session_is_ended(smtp_server):
    """Twenty pages sending at once (the "inline" delivery mode): each message goes once, in a
    session of its own or one kept, and every session opened is ended with QUIT, those kept once
    unused."""
    sender = smtp_server.sender(keep_seconds=0.3)
    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(lambda number: sender.send("jeanne@example.org", f"Message {number}", TEXT, HTML),
                      range(20)))

    assert sorted(received.message["Subject"] for received in smtp_server.inbox) == sorted(
        f"Message {number}" for number in range(20))
    peers = {received.peer for received in smtp_server.inbox}
    deadline = time.monotonic() + 5
    while len(smtp_server.quits) < len(peers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(smtp_server.quits) == sorted(peers)
