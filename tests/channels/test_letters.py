"""Letters: an activation code by post, queued like email and SMS, printed as a PDF for a
window envelope, kept in the outbox or posted to a print-and-mail provider."""

from __future__ import annotations

import base64
import io
import logging
from datetime import date, timedelta

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from idp import create_app
from idp.channels.letters import letter_pdf, printable
from idp.channels.models import Message
from idp.channels.senders import (
    DeliveryError,
    HttpLetterSender,
    LetterSender,
    OutboxLetterSender,
    build_letter_sender,
    mask_recipient,
)
from idp.channels.services import InvalidRecipient, Messages
from idp.config import load_settings
from idp.extensions import find_service
from idp.registry.postal import PostalAddress
from tests.conftest import IdpCliRunner, _reset
from tests.servers import GATEWAY_TOKEN, SmsGateway, SmtpServer

CODE = "K7QM-4TXD"
ADDRESS = PostalAddress("Jean-Pierre DUPONT-MOREL", ("Résidence Les Tilleuls", "Bâtiment C",
                                                     "14 avenue Jean Jaurès"), "69007", "Lyon")
LINES = ["Jean-Pierre DUPONT-MOREL", "Résidence Les Tilleuls", "Bâtiment C",
         "14 avenue Jean Jaurès", "69007 LYON"]


@pytest.fixture
def tenants(app):
    """The tenants, in an app context (messages are rendered with the app's templates)."""
    with app.app_context():
        yield app.extensions["idp"].tenants


def queue(messages: Messages, tenant, address=ADDRESS, **context):
    valid_until = context.pop("valid_until", date(2026, 4, 13))
    return messages.queue_letter(
        tenant, "registration_letter", address, code=CODE, valid_until=valid_until,
        member_number="23456789", letter_url=f"{tenant.issuer}/register/letter", **context)


def pdf_text(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages)


class Recording:
    def __init__(self, error: Exception | None = None):
        self.error = error
        self.sent: list[tuple[list[str], str, bytes]] = []

    def send(self, address_lines, reference, pdf):
        if self.error is not None:
            raise self.error
        self.sent.append((address_lines, reference, pdf))


# -- queueing ---------------------------------------------------------------------------


def test_a_letter_is_queued_with_its_address_subject_and_text(db, channels, tenants,
                                                              clock):
    malakoff = tenants["malakoff"]
    message = queue(channels().messages(db), malakoff)

    assert (message.tenant, message.channel, message.template, message.status) == (
        "malakoff", "letter", "registration_letter", "pending")
    assert message.recipient == "\n".join(LINES)
    assert message.subject == "Votre code d’activation pour votre Espace Client"
    text = message.body_text
    assert text.startswith("Malakoff Humanis\nEspace Client\n\nParis, le 14 mars 2026\n\n")
    assert f"\n    {CODE}\n" in text
    assert f"rendez-vous sur {malakoff.issuer}/register/letter\u00a0;" in text
    assert "saisissez votre numéro d’adhérent, 23456789, puis ce code" in text
    assert "valable jusqu’au 13 avril 2026 inclus" in text
    assert "Vous n’êtes pas à l’origine de cette demande\u00a0?" in text
    assert "appelez-nous" in text
    assert message.body_html is None


def test_a_letter_in_english_for_a_reader_who_chose_it(db, channels, tenants):
    class Reader:
        locale = "en"

    message = queue(channels().messages(db), tenants["miel"], reader=Reader())

    assert message.subject == "Your activation code for your Espace Affilié"
    assert message.body_text.startswith("Miel mutuelle\nEspace Affilié\n\nParis, March 14, 2026\n\n")
    assert f"go to {tenants['miel'].issuer}/register/letter;" in message.body_text
    assert "valid until April 13, 2026 inclusive" in message.body_text
    assert f"\n    {CODE}\n" in message.body_text


def test_a_letter_is_dated_by_the_day_in_france(db, channels, tenants, clock):
    clock.advance(14 * 3600 + 45 * 60)  # 23:45 UTC is 00:45 the next day in Paris

    message = queue(channels().messages(db), tenants["malakoff"])

    assert "\n\nParis, le 15 mars 2026\n\n" in message.body_text


def test_the_documented_entry_point_takes_the_window_lines_too(db, channels, tenants):
    message = channels().messages(db).queue(
        tenants["miel"], "letter", "registration_letter", str(ADDRESS), code=CODE,
        valid_until=date(2026, 4, 13), member_number="76543210",
        letter_url="https://id.example.org/miel/register/letter")

    assert message.recipient == "\n".join(LINES)


@pytest.mark.parametrize(("address", "reason"), [
    ("Jean-Pierre DUPONT-MOREL", "2 to 6 lines"),
    ("A\n" + "x" * 39, "longer than 38"),
    ("A\n\n69007 LYON", "empty line"),
    ("A\n69007\tLYON", "control"),
    ("\n".join(["x"] * 7), "2 to 6 lines"),
])
def test_a_letter_needs_an_address_that_fits_the_window(db, channels, tenants, address,
                                                        reason):
    messages = channels().messages(db)
    with pytest.raises(InvalidRecipient, match=reason):
        messages.queue(tenants["malakoff"], "letter", "registration_letter", address, code=CODE,
                       valid_until=date(2026, 4, 13), member_number="1", letter_url="x")
    assert db.scalars(select(Message)).all() == []


def test_no_letter_without_an_address_on_file(db, channels, tenants):
    messages = channels().messages(db)
    with pytest.raises(InvalidRecipient, match="no postal address on file"):
        queue(messages, tenants["malakoff"], address=None)
    assert db.scalars(select(Message)).all() == []


# -- the PDF ----------------------------------------------------------------------------


def test_the_pdf_has_the_brand_the_address_the_code_and_its_validity(db, channels,
                                                                      tenants):
    message = queue(channels().messages(db), tenants["malakoff"])

    pdf = letter_pdf(message)

    assert pdf.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (round(float(box.width) * 25.4 / 72), round(float(box.height) * 25.4 / 72)) == (210, 297)
    text = pdf_text(pdf)
    assert "Malakoff Humanis" in text
    for line in LINES:
        assert line in text
    assert CODE in text
    assert "13 avril 2026" in text
    assert "Paris, le 14 mars 2026" in text
    assert "numéro d'adhérent, 23456789" in text  # the standard fonts' apostrophe
    assert "1/1" in text
    assert reader.metadata.title == "Votre code d'activation pour votre Espace Client"


def test_the_address_sits_in_the_envelope_window_and_the_brand_top_left(db, channels,
                                                                      tenants):
    message = queue(channels().messages(db), tenants["malakoff"])
    placed: dict[str, tuple[float, float]] = {}

    def visit(text, _cm, tm, _font, size):
        if text.strip():
            placed.setdefault(text.strip(), (tm[4] * 25.4 / 72, 297 - tm[5] * 25.4 / 72))

    PdfReader(io.BytesIO(letter_pdf(message))).pages[0].extract_text(visitor_text=visit)

    for line in LINES:
        x, y = placed[line]
        assert 110 <= x <= 120 and 50 <= y <= 95, (line, x, y)  # DL/C5 window, 100 × 45 mm
    x, y = placed["Malakoff Humanis"]
    assert x < 25 and y < 30


def test_the_same_letter_gives_the_same_bytes(db, channels, tenants, clock):
    message = queue(channels().messages(db), tenants["miel"])
    first = letter_pdf(message)
    clock.advance(3600)

    assert letter_pdf(message) == first
    assert b"D:20260314090000" in first  # the message's date, not the time of printing


def test_text_beyond_latin1_is_printed_with_plain_equivalents():
    assert printable("l’Œuvre — 10 € … Łódź ☃") == "l'OEuvre - 10 EUR ... Lódz ?"
    assert printable("déjà vu\u00a0!") == "déjà vu\u00a0!"


def test_a_letter_to_an_address_abroad(db, channels, tenants):
    abroad = PostalAddress("Karim BENALI", ("Avenue Louise 54",), "1050", "Bruxelles", "BE")
    message = queue(channels().messages(db), tenants["malakoff"], address=abroad)

    text = pdf_text(letter_pdf(message))

    assert "1050 BRUXELLES" in text and "BELGIQUE" in text


# -- delivery ---------------------------------------------------------------------------


def test_the_outbox_backend_is_the_default_and_http_when_configured():
    assert isinstance(build_letter_sender(load_settings(environ={})), OutboxLetterSender)
    sender = build_letter_sender(load_settings({
        "letter_backend": "http", "letter_gateway_url": "https://print.example/v1/letters",
        "letter_gateway_token": "t", "letter_gateway_timeout_seconds": 20}, environ={}))
    assert isinstance(sender, HttpLetterSender)
    assert isinstance(sender, LetterSender)
    assert (sender.url, sender.token, sender.timeout) == ("https://print.example/v1/letters", "t", 20)
    sender.close()


def test_the_worker_delivers_a_letter_with_its_pdf(db, channels, tenants):
    recording = Recording()
    built = channels(letter_sender=recording)
    message = queue(built.messages(db), tenants["malakoff"])
    db.commit()

    result = built.messages(db).deliver_due()

    assert result.sent == 1
    [(lines, reference, pdf)] = recording.sent
    assert lines == LINES
    assert reference == f"malakoff-{message.id}"
    assert pdf == letter_pdf(db.get(Message, message.id))
    assert db.get(Message, message.id).status == "sent"


def test_a_refused_letter_fails_at_once_and_a_provider_outage_retries(db, channels,
                                                                      tenants):
    refused = channels(letter_sender=Recording(DeliveryError("letter provider answered HTTP 422",
                                                             permanent=True)))
    first = queue(refused.messages(db), tenants["malakoff"])
    db.commit()
    refused.messages(db).deliver_due()
    assert (db.get(Message, first.id).status, db.get(Message, first.id).attempts) == ("failed", 1)

    down = channels(letter_sender=Recording(DeliveryError("letter provider answered HTTP 503")))
    second = queue(down.messages(db), tenants["malakoff"])
    db.commit()
    down.messages(db).deliver_due()
    stored = db.get(Message, second.id)
    assert (stored.status, stored.attempts, stored.last_error) == (
        "pending", 1, "letter provider answered HTTP 503")


def test_inline_delivery_after_the_commit(app, db, tenants):
    with app.app_context():
        outgoing = find_service(Messages)
        message = queue(outgoing, tenants["miel"])
        outgoing.session.commit()
        assert outgoing.send_now(message) is True
    assert db.get(Message, message.id).status == "sent"


def test_a_letter_past_its_code_is_not_posted(db, channels, tenants, clock):
    recording = Recording()
    built = channels(letter_sender=recording)
    message = built.messages(db).queue_letter(
        tenants["malakoff"], "registration_letter", ADDRESS, code=CODE,
        valid_until=date(2026, 4, 13), member_number="23456789", letter_url="x",
        expires_at=clock() + timedelta(days=30))
    db.commit()
    clock.advance(31 * 24 * 3600)

    built.messages(db).deliver_due()

    assert recording.sent == []
    assert db.get(Message, message.id).status == "expired"


def test_logs_and_the_cli_never_show_the_code_or_the_address(db, channels, tenants,
                                                            runner, caplog):
    recording = Recording()
    built = channels(letter_sender=recording)
    with caplog.at_level(logging.DEBUG):
        queue(built.messages(db), tenants["malakoff"])
        db.commit()
        built.messages(db).deliver_due()
    listed = runner.invoke(args=["outbox", "list"])

    assert recording.sent
    for shown in (caplog.text, listed.output):
        assert CODE not in shown
        assert "DUPONT" not in shown and "Tilleuls" not in shown
    assert "letter" in listed.output and "69•••" in listed.output


def test_recipients_of_letters_are_masked():
    assert mask_recipient("letter", "\n".join(LINES)) == "69•••"
    assert mask_recipient("letter", "Karim BENALI\nAvenue Louise 54\n1050 BRUXELLES\nBELGIQUE") == "10•••"


# -- the print-and-mail provider ------------------------------------------------------------


@pytest.fixture
def provider():
    gateway = SmsGateway(path="/v1/letters")
    yield gateway
    gateway.close()


def test_a_letter_is_posted_as_json_with_its_pdf_and_the_bearer_token(db, channels,
                                                                      tenants, provider):
    sender = HttpLetterSender(provider.url, GATEWAY_TOKEN)
    message = queue(channels(letter_sender=sender).messages(db), tenants["malakoff"])
    db.commit()

    assert channels(letter_sender=sender).messages(db).deliver(message) is True
    sender.close()

    [request] = provider.requests
    assert request.path == "/v1/letters"
    assert request.headers["Authorization"] == f"Bearer {GATEWAY_TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == f"malakoff-{message.id}"
    assert set(request.body) == {"reference", "address_lines", "pdf"}
    assert request.body["reference"] == f"malakoff-{message.id}"
    assert request.body["address_lines"] == LINES
    pdf = base64.b64decode(request.body["pdf"])
    assert pdf == letter_pdf(message)
    assert CODE in pdf_text(pdf)


def test_idp_outbox_work_posts_letters_to_the_configured_provider(settings, provider):
    app = create_app({**settings, "letter_backend": "http", "letter_gateway_url": provider.url,
                      "letter_gateway_token": GATEWAY_TOKEN, "letter_gateway_timeout_seconds": 5})
    try:
        services = app.extensions["idp"]
        # Queued on a session of its own: left to the worker, even in the "inline" mode.
        with app.app_context(), services.database.session() as session:
            message = queue(services.channels.messages(session), services.tenants["miel"])
            session.commit()

        result = IdpCliRunner(app).invoke(args=["outbox", "work", "--once"])

        assert result.exit_code == 0, result.output
        assert "sent 1, delayed 0, failed 0, expired 0" in result.output
        [request] = provider.requests
        assert request.headers["Authorization"] == f"Bearer {GATEWAY_TOKEN}"
        assert request.body["reference"] == f"miel-{message.id}"
        assert CODE in pdf_text(base64.b64decode(request.body["pdf"]))
        assert CODE not in result.output
    finally:
        app.extensions["idp"].channels.letter_sender.close()
        _reset(app)


@pytest.mark.parametrize(("status", "permanent"), [
    (400, True), (409, True), (413, True), (422, True),
    (401, False), (429, False), (500, False), (503, False), (302, False),
])
def test_provider_errors(provider, status, permanent):
    provider.status = status
    sender = HttpLetterSender(provider.url, GATEWAY_TOKEN)
    with pytest.raises(DeliveryError, match=f"HTTP {status}") as caught:
        sender.send(LINES, "malakoff-1", b"%PDF-1.3 " + CODE.encode())
    sender.close()
    assert caught.value.permanent is permanent
    assert CODE not in str(caught.value) and "DUPONT" not in str(caught.value)


def test_a_hung_provider_times_out_and_the_letter_waits_for_its_next_try(db, channels,
                                                                       tenants, provider):
    provider.delay = 2.0
    sender = HttpLetterSender(provider.url, GATEWAY_TOKEN, timeout=0.3)
    built = channels(letter_sender=sender)
    message = queue(built.messages(db), tenants["malakoff"])
    db.commit()

    assert built.messages(db).deliver(message) is False
    sender.close()

    stored = db.get(Message, message.id)
    assert (stored.status, stored.attempts) == ("pending", 1)
    assert stored.last_error == "letter provider timed out (0.3 s without an answer)"


def test_an_unreachable_provider():
    sender = HttpLetterSender(f"http://127.0.0.1:{SmtpServer().port}/letters", "t")
    with pytest.raises(DeliveryError, match="cannot reach the letter provider") as caught:
        sender.send(LINES, "malakoff-1", b"%PDF")
    sender.close()
    assert caught.value.permanent is False


# -- the outbox page --------------------------------------------------------------------------


def test_the_outbox_page_lists_a_letter_with_a_link_to_its_pdf(app, client, db, tenants):
    with app.app_context():
        outgoing = find_service(Messages)
        message = queue(outgoing, tenants["malakoff"])
        outgoing.session.commit()

    page = client.get("/_outbox").data.decode()

    assert "COURRIER" in page
    assert "Jean-Pierre DUPONT-MOREL, Résidence Les Tilleuls" in page
    link = f'href="/_outbox/{message.id}/letter.pdf"'
    assert link in page
    response = client.get(f"/_outbox/{message.id}/letter.pdf")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store"
    text = pdf_text(response.data)
    assert CODE in text
    for line in LINES:
        assert line in text


def test_only_letters_have_a_pdf(app, client, db, tenants):
    email = Message(tenant="malakoff", channel="email", template="test", recipient="a@example.org",
                    subject="Bonjour", body_text="Votre code : 123456")
    db.add(email)
    db.commit()

    assert client.get(f"/_outbox/{email.id}/letter.pdf").status_code == 404
    assert client.get("/_outbox/999999/letter.pdf").status_code == 404


def test_no_pdf_where_the_outbox_page_is_off(app, settings, db, tenants):
    with app.app_context():
        outgoing = find_service(Messages)
        message = queue(outgoing, tenants["malakoff"])
        outgoing.session.commit()
    closed = create_app({**settings, "outbox_page": False})

    assert closed.test_client().get(f"/_outbox/{message.id}/letter.pdf").status_code == 404
