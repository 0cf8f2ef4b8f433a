"""`idp accounts …`: operators create and list member accounts (SPEC §11)."""

from __future__ import annotations

from datetime import date

import bcrypt
import pytest
from sqlalchemy import select

from idp import events
from idp.accounts.models import Account
from idp.events import AuditEvent
from tests.factories import Factories
from tests.flows import Flow, newest_message
from tests.unit.test_hashing import _pbkdf2


def make_client(app, db):
    return Factories(app, db).client("malakoff")

PASSWORD = "Correct-Horse-7!"
MALAKOFF = ["--tenant", "malakoff", "--given-name", "Jeanne", "--family-name", "Martin",
            "--email", "Jeanne.Martin@Example.org"]
MIEL = ["--tenant", "miel", "--given-name", "Paul", "--family-name", "Durand",
        "--member-number", "20000001"]


def accounts(runner, *args: str, **kwargs):
    return runner.invoke(args=["accounts", *args], **kwargs)


def create(runner, *args: str, password: str | None = PASSWORD):
    return accounts(runner, "create", *args, input=None if password is None else f"{password}\n")


def stored(db) -> list[Account]:
    db.rollback()
    return list(db.scalars(select(Account).order_by(Account.created_at)))


def assert_refused(result, message: str) -> None:
    assert result.exit_code != 0, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("command", ["create", "list", "set-password", "set-contact",
                                     "wrap-legacy-hashes"])
def test_every_command_has_help(runner, command):
    result = accounts(runner, command, "--help")

    assert result.exit_code == 0, result.output
    assert f"accounts {command}" in result.output


def test_help_says_where_the_password_comes_from(runner):
    result = accounts(runner, "create", "--help")

    assert "standard input" in result.output
    assert "--password" not in result.output


class TestCreate:
    def test_a_malakoff_account_with_a_piped_password(self, runner, db, app):
        result = create(runner, *MALAKOFF, "--birthdate", "1958-03-14", "--phone", "06 12 34 56 78")

        assert result.exit_code == 0, result.output
        (account,) = stored(db)
        assert account.id in result.output
        assert "jeanne.martin@example.org" in result.output
        assert PASSWORD not in result.output
        assert account.tenant == "malakoff"
        assert account.email == "jeanne.martin@example.org"
        assert (account.given_name, account.family_name) == ("Jeanne", "Martin")
        assert account.birthdate == date(1958, 3, 14)
        assert account.phone_number == "+33612345678"
        assert account.status == "active"
        assert PASSWORD not in account.password_hash
        assert app.extensions["idp"].hasher.verify(account.password_hash, PASSWORD).ok
        event = db.scalar(select(AuditEvent).where(AuditEvent.tag == events.ACCOUNT_CREATED))
        assert event.account_id == account.id

    def test_a_legacy_malakoff_account_signs_in_with_its_member_number(self, runner, db):
        result = create(runner, *MALAKOFF[:6], "--member-number", "30000001", "--legacy")
        assert result.exit_code == 0, result.output
        assert "signs in as 30000001" in result.output
        [account] = stored(db)
        assert account.legacy_login and account.email is None
        listed = accounts(runner, "list", "--tenant", "malakoff")
        assert "30000001 (legacy)" in listed.output

    @pytest.mark.parametrize("scheme", ["pbkdf2_sha256", "bcrypt"])
    def test_a_hash_of_the_previous_system_signs_in_and_is_upgraded(self, runner, db, app, scheme):
        legacy_hash = _pbkdf2(PASSWORD) if scheme == "pbkdf2_sha256" else bcrypt.hashpw(
            PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        result = accounts(runner, "create", *MALAKOFF, "--member-number", "30000002", "--legacy",
                          "--hash-on-stdin", input=f"{legacy_hash}\n")
        assert result.exit_code == 0, result.output
        assert legacy_hash not in result.output
        [account] = stored(db)
        # Stored wrapped: argon2id over the legacy digest, which is not kept.
        digest = legacy_hash.rsplit("$", 1)[1] if scheme == "pbkdf2_sha256" else legacy_hash[29:]
        assert account.password_hash.startswith(
            ("$wrapped-pbkdf2_sha256$1000$s4lt$argon2id$", f"$wrapped-bcrypt{legacy_hash[:29]}$argon2id$"))
        assert digest not in account.password_hash
        flow = Flow(app.test_client(), "malakoff", make_client(app, db), account)
        signed_in = flow.login(flow.authorize(), identifier=account.email)
        # Password and code accepted; the legacy account is now asked to confirm its email.
        answer = flow.http.get(signed_in.headers["Location"])
        assert answer.status_code == 200 and "Mettre à jour mon identifiant".encode() in answer.data
        db.expire_all()
        assert stored(db)[0].password_hash.startswith("$argon2id$")

    @pytest.mark.parametrize("bad", ["", "Correct-Horse-7!", "pbkdf2_sha256$x$s$d", "$2b$04$short",
                                     "md5$abc"])
    def test_an_unsupported_hash_is_refused(self, runner, db, bad):
        result = accounts(runner, "create", *MALAKOFF[:6], "--member-number", "30000003", "--legacy",
                          "--hash-on-stdin", input=f"{bad}\n")
        assert_refused(result, "no supported hash")
        assert stored(db) == []

    @pytest.mark.parametrize("unmatchable", [
        "pbkdf2_sha256$600000$s4lt$not-base64!",
        "$2b$12$" + "e" * 22 + "!" * 31,
    ], ids=["pbkdf2 digest", "bcrypt digest"])
    def test_a_hash_no_password_could_match_is_refused(self, runner, db, unmatchable):
        result = accounts(runner, "create", *MALAKOFF[:6], "--member-number", "30000003", "--legacy",
                          "--hash-on-stdin", input=f"{unmatchable}\n")
        assert_refused(result, "--hash-on-stdin: standard input holds no usable hash: its ")
        assert "so no password would match it" in result.output
        assert stored(db) == []

    def test_a_miel_account_signs_in_with_its_member_number(self, runner, db):
        result = create(runner, *MIEL)

        assert result.exit_code == 0, result.output
        assert "signs in as 20000001" in result.output
        (account,) = stored(db)
        assert (account.tenant, account.member_number, account.email) == ("miel", "20000001", None)

    def test_at_a_terminal_the_password_is_asked_twice_hidden(self, runner, db, monkeypatch):
        monkeypatch.setattr("idp.cli.accounts._interactive", lambda: True)

        result = accounts(runner, "create", *MIEL, input=f"{PASSWORD}\n{PASSWORD}\n")

        assert result.exit_code == 0, result.output
        assert "Password:" in result.output
        assert "Repeat for confirmation:" in result.output
        assert PASSWORD not in result.output
        assert len(stored(db)) == 1

    def test_at_a_terminal_both_entries_must_match(self, runner, db, monkeypatch):
        monkeypatch.setattr("idp.cli.accounts._interactive", lambda: True)

        result = accounts(runner, "create", *MIEL, input=f"{PASSWORD}\nsomething-else\n")

        assert_refused(result, "do not match")
        assert stored(db) == []

    def test_the_password_cannot_be_given_on_the_command_line(self, runner, db):
        result = create(runner, *MIEL, "--password", PASSWORD, password=None)

        assert_refused(result, "No such option '--password'")
        assert PASSWORD not in result.output
        assert stored(db) == []

    def test_an_existing_account_is_refused(self, runner, db, make):
        make.account("malakoff", email="jeanne.martin@example.org")

        result = create(runner, *MALAKOFF)

        assert_refused(result, "already exists in malakoff")
        assert result.exit_code == 1
        assert len(stored(db)) == 1

    def test_the_same_member_number_in_another_tenant_is_another_account(self, runner, db):
        assert create(runner, *MIEL).exit_code == 0

        result = create(runner, *MALAKOFF, "--member-number", "20000001")

        assert result.exit_code == 0, result.output
        assert len(stored(db)) == 2

    @pytest.mark.parametrize(
        ("args", "password", "message"),
        [
            (["--tenant", "acme", "--given-name", "A", "--family-name", "B", "--email", "a@b.fr"],
             PASSWORD, "unknown tenant 'acme'"),
            (MALAKOFF[:-2], PASSWORD, "malakoff accounts sign in with an email: give --email"),
            (MIEL[:-2], PASSWORD, "miel accounts sign in with a member number"),
            ([*MIEL[:-1], "2000001"], PASSWORD, "a member number has exactly 8 digits"),
            ([*MALAKOFF[:-1], "jeanne.example.org"], PASSWORD, "is not an email address"),
            ([*MALAKOFF, "--phone", "01 23 45 67 89"], PASSWORD, "is not a valid mobile number"),
            ([*MALAKOFF, "--phone", "not a phone"], PASSWORD, "is not a phone number"),
            ([*MALAKOFF, "--birthdate", "14/03/1958"], PASSWORD, "Invalid value for '--birthdate'"),
            ([*MALAKOFF, "--birthdate", "2999-01-01"], PASSWORD, "the birth date is in the future"),
            ([*MALAKOFF[:2], "--given-name", " ", *MALAKOFF[4:]], PASSWORD, "1 to 100 characters"),
            ([*MALAKOFF[:2], "--given-name", "J\x1b[2J", *MALAKOFF[4:]], PASSWORD,
             "contains a control or invisible character"),
            ([*MALAKOFF[:4], "--family-name", "D\u202e", *MALAKOFF[6:]], PASSWORD,
             "contains a control or invisible character"),
            (MALAKOFF, "short", "8 to 128 characters"),
            (MALAKOFF, "x" * 129, "8 to 128 characters"),
            (MALAKOFF, "Azerty123!", "not a common password"),
            (MALAKOFF, "", "no password: give it on standard input"),
            (MALAKOFF, None, "no password: give it on standard input"),
            ([*MALAKOFF, "--legacy"], PASSWORD, "--legacy needs --member-number"),
            ([*MIEL, "--legacy"], PASSWORD, "--legacy needs --member-number"),
        ],
    )
    def test_bad_input_is_refused_and_creates_nothing(self, runner, db, args, password, message):
        result = create(runner, *args, password=password)

        assert_refused(result, message)
        assert stored(db) == []
        if password:
            assert password not in result.output


class TestList:
    def test_lists_a_tenants_accounts_with_their_identifier(self, runner, make):
        first = make.account("malakoff", email="first@example.org")
        second = make.account("malakoff", email="second@example.org")
        other = make.account("miel")

        result = accounts(runner, "list", "--tenant", "malakoff")

        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert lines[0].split() == ["ID", "IDENTIFIER", "STATUS", "CREATED"]
        assert lines[1].split()[:3] == [first.id, "first@example.org", "active"]
        assert lines[2].split()[:3] == [second.id, "second@example.org", "active"]
        assert other.id not in result.output
        assert lines[-1] == "2 account(s)"

    def test_miel_accounts_are_listed_by_member_number(self, runner, make):
        account = make.account("miel")

        result = accounts(runner, "list", "--tenant", "miel")

        assert result.output.splitlines()[1].split()[:2] == [account.id, account.member_number]

    def test_filter_by_status(self, runner, db, make):
        make.account("miel")
        disabled = make.account("miel")
        disabled.status = "disabled"
        db.commit()

        result = accounts(runner, "list", "--tenant", "miel", "--status", "disabled")

        assert result.exit_code == 0, result.output
        assert disabled.id in result.output
        assert result.output.splitlines()[-1] == "1 account(s)"

    def test_unknown_tenant(self, runner):
        assert_refused(accounts(runner, "list", "--tenant", "acme"), "unknown tenant 'acme'")


def test_set_password_reads_stdin_and_refuses_unknown_accounts(runner, make):
    member = make.account("malakoff")
    unknown = runner.invoke(args=["accounts", "set-password", "--tenant", "malakoff",
                                  "nobody@example.org"], input="Brand-New-Pass-42!\n")
    assert unknown.exit_code == 1 and "no account" in unknown.output
    short = runner.invoke(args=["accounts", "set-password", "--tenant", "malakoff", member.email],
                          input="short\n")
    assert short.exit_code != 0 and "8 to 128 characters" in short.output
    extra = runner.invoke(args=["accounts", "set-password", "--tenant", "malakoff", member.email,
                                "Brand-New-Pass-42!"])
    assert extra.exit_code == 2
    done = runner.invoke(args=["accounts", "set-password", "--tenant", "malakoff", member.email],
                         input="Brand-New-Pass-42!\n")
    assert done.exit_code == 0, done.output


def test_a_password_piped_from_a_file_is_read_as_the_member_types_it(runner, make, db, app):
    member = make.account("malakoff")
    command = ["accounts", "set-password", "--tenant", "malakoff", member.email]
    for piped, told in ((b"\xff\xfeBrand-New-Pass-42!\n", "standard input is not UTF-8 text"),
                        ("Brand-New\x1b-Pass-42!\n", "holds a control or invisible character")):
        refused = runner.invoke(args=command, input=piped)
        assert refused.exit_code == 2 and told in refused.output, refused.output
        assert "Traceback" not in refused.output

    # Saved by Notepad: a byte-order mark first, a Windows line break last.
    done = runner.invoke(args=command, input="\ufeffBrand-New-Pass-42!\r\n".encode())

    assert done.exit_code == 0, done.output
    db.expire_all()
    stored_hash = db.get(Account, member.id).password_hash
    assert app.extensions["idp"].hasher.verify(stored_hash, "Brand-New-Pass-42!").ok


class TestSetContact:
    def set_contact(self, runner, tenant: str, identifier: str, *options: str):
        return accounts(runner, "set-contact", "--tenant", tenant, identifier, *options)

    def test_a_legacy_account_without_contact_can_then_sign_in_with_a_code(self, runner, db, client, make):
        created = create(runner, *MALAKOFF[:6], "--member-number", "30000009", "--legacy")
        assert created.exit_code == 0, created.output
        [account] = stored(db)
        assert account.email is None and account.phone_number is None

        result = self.set_contact(runner, "malakoff", "30000009", "--email", " Jeanne@Example.ORG ",
                                  "--phone", "06 12 34 56 78")

        assert result.exit_code == 0, result.output
        [account] = stored(db)
        assert (account.email, account.email_verified) == ("jeanne@example.org", True)
        assert (account.phone_number, account.phone_number_verified) == ("+33612345678", True)
        assert account.legacy_login  # still signs in with the member number until it migrates
        changes = db.scalars(select(AuditEvent).where(
            AuditEvent.tag.in_([events.EMAIL_CHANGED, events.MOBILE_CHANGED]))).all()
        assert {(e.tag, e.account_id, e.data["reason"]) for e in changes} == {
            (events.EMAIL_CHANGED, account.id, "operator"), (events.MOBILE_CHANGED, account.id, "operator")}
        # The member's sign-in passes its code, sent to the new address, and (the migration
        # being open) lands on the page that makes that address the identifier.
        flow = Flow(client, "malakoff", make.client(), account)
        signed_in = flow.login(flow.authorize(prompt="login"), identifier="30000009")
        response = flow.http.get(signed_in.headers["Location"])
        assert newest_message(client.application, "otp_code").recipient == "jeanne@example.org"
        assert response.status_code == 200 and "jeanne@example.org" in response.text
        assert "Mettre à jour mon identifiant" in response.text

    def test_the_previous_address_is_told_and_a_new_mobile_notified(self, runner, db, client, make):
        member = make.account("malakoff", email="old@example.org")
        result = self.set_contact(runner, "malakoff", "old@example.org", "--email", "new@example.org")
        assert result.exit_code == 0, result.output
        assert newest_message(client.application, "email_changed").recipient == "old@example.org"
        # The address is now the identifier.
        result = self.set_contact(runner, "malakoff", "new@example.org", "--phone", "+33 7 81 23 45 42")
        assert result.exit_code == 0, result.output
        notice = newest_message(client.application, "mobile_changed")
        assert notice.recipient == "new@example.org" and "par 42" in notice.body_text
        db.refresh(member)
        assert member.phone_number == "+33781234542"

    @pytest.mark.parametrize(("locale", "email_subject", "mobile_subject"), [
        ("en", "Your account’s email address has been changed", "Your mobile number has been changed"),
        (None, "L’adresse e-mail de votre compte a été changée", "Votre numéro de mobile a été changé"),
    ])
    def test_the_notices_are_in_the_members_language(self, runner, client, make, locale,
                                                     email_subject, mobile_subject):
        make.account("malakoff", email="old@example.org", locale=locale)
        result = self.set_contact(runner, "malakoff", "old@example.org", "--email", "new@example.org",
                                  "--phone", "+33 7 81 23 45 42")
        assert result.exit_code == 0, result.output
        assert newest_message(client.application, "email_changed").subject == email_subject
        assert newest_message(client.application, "mobile_changed").subject == mobile_subject

    @pytest.mark.parametrize(("options", "message"), [
        ((), "give --email, --phone or both"),
        (("--email", "not-an-address"), "is not an email address"),
        (("--phone", "01 23 45 67 89"), "is not a valid mobile number"),
        (("--phone", "garbage"), "is not a phone number"),
        (("--email", "taken@example.org"), "another account of malakoff has the address taken@example.org"),
    ])
    def test_bad_input_changes_nothing(self, runner, db, make, options, message):
        make.account("malakoff", email="taken@example.org")
        member = make.account("malakoff", email="member@example.org", phone_number=None)
        before = db.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))

        assert_refused(self.set_contact(runner, "malakoff", "member@example.org", *options), message)

        db.refresh(member)
        assert (member.email, member.phone_number) == ("member@example.org", None)
        assert db.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1)) == before

    def test_unknown_account_or_tenant(self, runner):
        assert_refused(self.set_contact(runner, "malakoff", "nobody@example.org", "--email", "a@example.org"),
                       "no account 'nobody@example.org' in malakoff")
        assert_refused(self.set_contact(runner, "acme", "x", "--email", "a@example.org"),
                       "unknown tenant 'acme'")


def test_legacy_hashes_imported_before_wrapping_are_wrapped_and_still_sign_in(runner, db, app):
    make = Factories(app, db)
    pbkdf2, bcrypted = make.account(), make.account()
    native, broken = make.account(), make.account()
    legacy = {pbkdf2.id: _pbkdf2(PASSWORD),
              bcrypted.id: bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()}
    # As an import stored them before imports wrapped them; one shape verify cannot read.
    for account_id, legacy_hash in (*legacy.items(), (broken.id, "pbkdf2_sha256$x$s$d")):
        db.get(Account, account_id).password_hash = legacy_hash
    db.commit()
    native_hash = native.password_hash

    result = accounts(runner, "wrap-legacy-hashes", "--batch", "1")
    assert result.exit_code == 0, result.output
    assert "2 legacy password hash(es) wrapped" in result.output

    db.expire_all()
    for account_id, legacy_hash in legacy.items():
        wrapped = db.get(Account, account_id).password_hash
        assert wrapped.startswith("$wrapped-") and legacy_hash[-20:] not in wrapped
    assert db.get(Account, native.id).password_hash == native_hash
    assert db.get(Account, broken.id).password_hash == "pbkdf2_sha256$x$s$d"
    assert "0 legacy password hash(es) wrapped" in accounts(runner, "wrap-legacy-hashes").output

    flow = Flow(app.test_client(), "malakoff", make_client(app, db), db.get(Account, pbkdf2.id))
    assert flow.give_password(PASSWORD).status_code in (302, 303)  # on to the code
    db.expire_all()
    assert db.get(Account, pbkdf2.id).password_hash.startswith("$argon2id$")
