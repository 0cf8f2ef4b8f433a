"""Malakoff registration by member number, review queue and activation (SPEC §2, §3.1)."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from idp.accounts.models import Account, RegistrationRequest
from idp.channels.models import Message
from idp.registry.models import Member
from tests.flows import Flow, csrf_token, query, sms_code_step

PASSWORD = "Nouveau-Depart-2026!"


@pytest.fixture
def registry(db):
    members = [
        Member(tenant="malakoff", member_number="23456789", last_name="DUPONT-MOREL",
               first_name="Jean-Pierre", birth_date=date(1949, 11, 23), role="principal",
               kind="health", status="active", mobile="+33612345678"),
        Member(tenant="malakoff", member_number="34567890", last_name="DUPONT-MOREL",
               first_name="Lucie", birth_date=date(2012, 5, 6), role="beneficiary",
               kind="health", status="active"),
        Member(tenant="malakoff", member_number="45678901", last_name="THÉVENOT",
               first_name="Marcel", birth_date=date(1940, 1, 15), role="principal",
               kind="pension", status="terminated"),
        Member(tenant="malakoff", member_number="56789012", last_name="LEGRAND",
               first_name="Sophie", birth_date=date(1958, 7, 1), role="principal", kind="health",
               status="active", email="sophie.legrand@example.org", mobile="+33611223344"),
    ]
    db.add_all(members)
    db.commit()
    return members


def _form(client, **overrides):
    page = client.get("/malakoff/register")
    data = {
        "member_number": "23456789", "last_name": "dupont morel", "first_name": "jean pierre",
        "birth_date": "23/11/1949", "email": "jp.dupont@example.org",
        "email_confirm": "jp.dupont@example.org", "mobile": "06 12 34 56 78", "accept_terms": "y",
        "csrf_token": csrf_token(page.data),
    }
    data.update(overrides)
    return sms_code_step(client, "malakoff", client.post(
        "/malakoff/register", data={k: v for k, v in data.items() if v is not None}))


def _mails(db, template):
    db.expire_all()
    return db.scalars(select(Message).where(Message.template == template).order_by(Message.id)).all()


def _activation_path(db) -> str:
    body = _mails(db, "activation")[-1].body_text
    return re.search(r"http://localhost(/malakoff/activate/\S+)", body).group(1)


def _define_password(client, path, password=PASSWORD, confirm=None):
    page = client.get(path)
    assert page.status_code == 200, page.data[:300]
    return client.post(path, data={"password": password, "password_confirm": confirm or password,
                                   "csrf_token": csrf_token(page.data)})


def test_registration_then_activation_then_sign_in(client, db, registry, make):
    response = _form(client)
    assert response.status_code == 303
    page = client.get(response.headers["Location"])
    assert b"Consultez votre messagerie" in page.data and b"spam" in page.data
    account = db.scalar(select(Account).where(Account.member_number == "23456789"))
    assert account.status == "pending" and account.password_hash is None
    assert account.phone_number == "+33612345678" and account.phone_number_verified
    assert account.terms_version == "2026-01"
    assert account.given_name == "Jean-Pierre"  # from the registry, not as typed

    done = _define_password(client, _activation_path(db))
    assert done.status_code == 303 and done.headers["Location"].endswith("/malakoff/welcome")
    welcome = client.get(done.headers["Location"])
    assert b"Bienvenue sur votre Espace Client" in welcome.data
    db.expire_all()
    assert db.get(Account, account.id).status == "active"

    flow = Flow(client, "malakoff", make.client(), db.get(Account, account.id))
    response = flow.login(flow.authorize(), password=PASSWORD)
    assert "code" in query(response.headers["Location"])


@pytest.mark.parametrize("typed", ["23111949", "23 11 1949"])
def test_a_birth_date_typed_on_a_keypad_of_digits_registers(client, db, registry, typed):
    # The field asks a phone for its keypad of digits (inputmode="numeric"), which has no "/".
    response = _form(client, birth_date=typed)

    assert response.status_code == 303, response.data[:500]
    assert [m.recipient for m in _mails(db, "activation")] == ["jp.dupont@example.org"]


def test_the_activation_link_is_single_use(client, db, registry):
    _form(client)
    path = _activation_path(db)
    _define_password(client, path)
    again = client.get(path)
    assert again.status_code == 303 and again.headers["Location"].endswith("/activate/expired")


def test_an_expired_link_offers_a_new_one(client, db, registry, monkeypatch):
    _form(client)
    path = _activation_path(db)
    later = time.time() + 72 * 3600 + 1
    monkeypatch.setattr(time, "time", lambda: later)
    expired = client.get(path)
    assert expired.headers["Location"].endswith("/activate/expired")
    page = client.get(expired.headers["Location"])
    assert "Ce lien n’est plus valable".encode() in page.data
    monkeypatch.undo()
    resent = client.post("/malakoff/activate/expired", data={
        "email": "jp.dupont@example.org", "csrf_token": csrf_token(page.data)})
    assert "un nouveau lien vient d’y être envoyé".encode() in resent.data
    assert len(_mails(db, "activation")) == 2
    # Only the newest link works.
    assert client.get(path).headers["Location"].endswith("/activate/expired")
    assert _define_password(client, _activation_path(db)).status_code == 303


def test_registering_again_sends_an_email_not_a_second_account(client, db, registry):
    _form(client)
    _define_password(client, _activation_path(db))
    again = _form(client)
    assert again.status_code == 303  # the same page as a first registration
    assert len(_mails(db, "already_registered")) == 1
    assert len(db.scalars(select(Account).where(Account.member_number == "23456789")).all()) == 1


def test_an_interrupted_registration_can_restart_with_the_same_contacts(client, db, registry):
    _form(client)
    first = _activation_path(db)
    for message in db.scalars(select(Message)):  # in Python: SQLite has no interval arithmetic
        message.created_at -= timedelta(minutes=6)
    db.commit()
    _form(client)
    assert _activation_path(db) != first  # a new link, which replaces the first
    assert client.get(first).headers["Location"].endswith("/activate/expired")
    assert _define_password(client, _activation_path(db)).status_code == 303


def test_a_pending_registration_is_never_retargeted(client, db, registry):
    _form(client)
    path = _activation_path(db)
    other = _form(client, email="autre@example.org", email_confirm="autre@example.org")
    assert other.status_code == 303
    assert "en cours de vérification".encode() in client.get(other.headers["Location"]).data
    account = db.scalar(select(Account).where(Account.member_number == "23456789"))
    assert account.email == "jp.dupont@example.org"
    request = db.scalar(select(RegistrationRequest))
    assert request.reason == "pending_elsewhere" and request.submitted["email"] == "autre@example.org"
    [told] = _mails(db, "registration_contested")
    assert told.recipient == "jp.dupont@example.org"
    assert [m.recipient for m in _mails(db, "activation")] == ["jp.dupont@example.org"]
    assert _define_password(client, path).status_code == 303  # the member's own link still works


@pytest.mark.parametrize(("overrides", "message"), [
    ({"email_confirm": "jp.dupond@example.org"}, "Les deux adresses emails ne sont pas identiques."),
    ({"mobile": "01 45 67 89 10"}, "numéro de téléphone mobile valide"),
    ({"mobile": "12"}, "numéro de téléphone mobile valide"),
    ({"member_number": "1234567"}, "Le numéro d’adhérent comporte 8\u00a0chiffres."),
    ({"birth_date": "24/11"}, "JJ/MM/AAAA"),
    ({"birth_date": "31/02/1949"}, "Cette date n’existe pas\u00a0: vérifiez le jour et le mois."),
    ({"birth_date": "24/11/2949"}, "Votre date de naissance ne peut pas être dans le futur."),
    ({"birth_date": "24/11/1849"}, "Vérifiez l’année de votre date de naissance."),
    ({"accept_terms": None}, "Vous devez accepter"),
    ({"email": "pas-une-adresse", "email_confirm": "pas-une-adresse"}, "adresse e-mail valide"),
])
def test_field_errors_are_shown_next_to_the_field_and_nothing_is_created(
        client, db, registry, overrides, message):
    response = _form(client, **overrides)
    assert response.status_code == 400
    assert message.encode() in response.data
    assert b'aria-invalid="true"' in response.data
    assert db.scalar(select(Account).where(Account.member_number == "23456789")) is None
    assert _mails(db, "activation") == []


def test_a_complete_miss_does_not_say_which_field_was_wrong(client, db, registry):
    wrong_number = _form(client, member_number="99999999")
    wrong_birth = _form(client, birth_date="24/11/1949")
    assert wrong_number.status_code == wrong_birth.status_code == 400
    text = "ne correspondent pas à celles de votre contrat".encode()
    assert text in wrong_number.data and text in wrong_birth.data


def test_beneficiaries_and_terminated_members_get_their_own_message(client, db, registry):
    beneficiary = _form(client, member_number="34567890", first_name="Lucie", birth_date="06/05/2012")
    assert b"membre principal" in beneficiary.data
    terminated = _form(client, member_number="45678901", first_name="Marcel", last_name="Thevenot",
                       birth_date="15/01/1940")
    assert b"plus actif" in terminated.data
    assert db.scalar(select(Account)) is None


def test_a_near_miss_goes_to_review_and_is_approved(client, db, registry, runner):
    response = _form(client, first_name="Jean-Piere")  # one letter missing
    page = client.get(response.headers["Location"])
    assert "en cours de vérification".encode() in page.data
    assert db.scalar(select(Account)) is None
    request = db.scalar(select(RegistrationRequest))
    assert request.reason == "near_miss" and request.differences == ["first_name"]

    listed = runner.invoke(args=["review", "list", "--tenant", "malakoff"])
    assert str(request.id) in listed.output
    shown = runner.invoke(args=["review", "show", "--tenant", "malakoff", str(request.id)])
    assert "Jean-Piere" in shown.output and "Jean-Pierre" in shown.output
    approved = runner.invoke(args=["review", "approve", "--tenant", "malakoff", str(request.id)])
    assert approved.exit_code == 0, approved.output
    assert _define_password(client, _activation_path(db)).status_code == 303
    twice = runner.invoke(args=["review", "approve", "--tenant", "malakoff", str(request.id)])
    assert twice.exit_code == 1 and "already approved" in twice.output


def test_a_rejected_request_sends_a_rejection_email(client, db, registry, runner):
    _form(client, last_name="Dupont-Morell")
    request = db.scalar(select(RegistrationRequest))
    no_reason = runner.invoke(args=["review", "reject", "--tenant", "malakoff", str(request.id),
                                    "--reason", " "])
    assert no_reason.exit_code == 2
    for bad, told in (("r" * 501, "at most 500 characters"), ("not\x1b[2J him", "one line"),
                      ("first line\nsecond", "one line")):
        refused = runner.invoke(args=["review", "reject", "--tenant", "malakoff", str(request.id),
                                      "--reason", bad])
        assert refused.exit_code == 2 and told in refused.output, refused.output
    rejected = runner.invoke(args=["review", "reject", "--tenant", "malakoff", str(request.id),
                                   "--reason", "not the member"])
    assert rejected.exit_code == 0, rejected.output
    assert _mails(db, "registration_rejected")[0].recipient == "jp.dupont@example.org"
    again = runner.invoke(args=["review", "approve", "--tenant", "malakoff", str(request.id)])
    assert again.exit_code == 1
    assert db.scalar(select(Account)) is None


def test_contact_data_must_match_the_records_or_go_to_review(client, db, registry):
    response = _form(client, member_number="56789012", last_name="Legrand", first_name="Sophie",
                     birth_date="01/07/1958", email="autre@example.org",
                     email_confirm="autre@example.org", mobile="06 11 22 33 44")
    assert response.status_code == 303
    request = db.scalar(select(RegistrationRequest))
    assert request.reason == "contact_mismatch"
    notices = _mails(db, "registration_notice")
    assert [m.recipient for m in notices] == ["sophie.legrand@example.org"]


def test_the_activation_page_checks_the_password_rules(client, db, registry):
    _form(client)
    path = _activation_path(db)
    weak = _define_password(client, path, password="jeanpierre")
    assert weak.status_code == 400
    mismatch = _define_password(client, path, confirm="Autre-Chose-2026!")
    assert mismatch.status_code == 400
    assert b"Les deux mots de passe ne sont pas identiques." in mismatch.data
    db.expire_all()
    assert db.scalar(select(Account)).status == "pending"


@pytest.mark.parametrize(("accept_language", "subject", "locale"), [
    (None, "Activez votre Espace Client", "fr"),
    ("en-GB,en;q=0.9", "Activate your Espace Client", "en"),
    ("fr-FR,fr;q=0.9,en;q=0.8", "Activez votre Espace Client", "fr"),
])
def test_the_activation_email_is_in_the_language_of_the_pages_which_the_account_keeps(
        client, db, registry, accept_language, subject, locale):
    if accept_language:
        client.environ_base["HTTP_ACCEPT_LANGUAGE"] = accept_language
    _form(client)
    [activation] = _mails(db, "activation")
    assert activation.subject == subject
    assert ("This link is valid for 72 hours" in activation.body_text) is (locale == "en")
    assert db.scalar(select(Account.locale)) == locale


def test_activating_in_another_language_makes_it_the_accounts(client, db, registry):
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    _form(client)
    assert db.scalar(select(Account.locale)) == "en"
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "fr"
    assert _define_password(client, _activation_path(db)).status_code == 303
    db.expire_all()
    assert db.scalar(select(Account.locale)) == "fr"


@pytest.mark.parametrize(("decision", "template", "english_subject"), [
    (["approve"], "activation", "Activate your Espace Client"),
    (["reject", "--reason", "not the member"], "registration_rejected",
     "Your account request could not be completed"),
])
def test_support_answers_in_the_language_the_member_registered_in(
        client, db, registry, runner, decision, template, english_subject):
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    _form(client, first_name="Jean-Piere")  # a near miss: support decides later, from the CLI
    [received] = _mails(db, "registration_received")
    assert received.subject == "Your account request is being checked"
    request = db.scalar(select(RegistrationRequest))
    assert request.locale == "en"
    decided = runner.invoke(args=["review", decision[0], "--tenant", "malakoff", str(request.id),
                                  *decision[1:]])
    assert decided.exit_code == 0, decided.output
    [answer] = _mails(db, template)
    assert answer.subject == english_subject and answer.body_text.startswith("Hello,")
    if template == "activation":
        assert db.scalar(select(Account.locale)) == "en"


def test_a_french_registration_under_review_is_answered_in_french(client, db, registry, runner):
    _form(client, first_name="Jean-Piere")
    request = db.scalar(select(RegistrationRequest))
    assert request.locale == "fr"
    runner.invoke(args=["review", "approve", "--tenant", "malakoff", str(request.id)])
    assert _mails(db, "activation")[0].subject == "Activez votre Espace Client"


def test_an_address_of_another_account_is_told_in_that_accounts_language(client, db, registry, make):
    make.account("malakoff", email="jp.dupont@example.org", locale="fr")
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    assert _form(client).status_code == 303
    [notice] = _mails(db, "email_in_use")
    assert notice.subject == "Cette adresse e-mail est déjà utilisée"
