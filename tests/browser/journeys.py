"""A member's browser on the provider and the demo portals, one step at a time.

The browser tests put these steps together into journeys and check every page a step reaches
(``Checkpoint``: axe-core, reflow…); the screenshot tour walks the same steps with a camera
instead. Codes and links are read from the outbox, as the member would read their email and SMS.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from playwright.sync_api import Page, expect

from idp.channels.models import Message
from idp.demo.setup import DEMO_ACCOUNTS, DemoAccount
from idp.oidc.clients import register_client
from tests import flows
from tests.flows import pkce_pair

#: Called with the page and a name ("malakoff-sign-in") at every page a journey reaches.
Checkpoint = Callable[[Page, str], None]

IDENTIFIER_LABEL = {"malakoff": "Adresse e-mail", "miel": "Numéro d’adhérent"}
CODE_CHANNEL_LABEL = {"email": "Par e-mail", "sms": "Par SMS"}
BROWSER_RULES = ("length", "lowercase", "uppercase", "digit", "special")


def demo_account(tenant: str) -> DemoAccount:
    """The tenant's demo member who signs in with the tenant's identifier (not a legacy one)."""
    return next(account for account in DEMO_ACCOUNTS if account.tenant == tenant and not account.legacy)


def newest_message(live, template: str, channel: str = "email") -> Message:
    return flows.newest_message(live.app, template, channel)


def code_in(live, template: str, channel: str) -> str:
    """The 6-digit code of the newest such message."""
    return flows.last_code(live.app, channel, template)


def code_of_the_letter(live) -> str:
    """The activation code of the newest registration letter (ABCD-2345)."""
    letter = newest_message(live, "registration_letter", "letter")
    return re.search(r"\b[A-Z2-9]{4}-[A-Z2-9]{4}\b", letter.body_text)[0]


def link_in(live, template: str, path: str) -> str:
    """The provider's link with ``path`` in the newest such email."""
    body = newest_message(live, template).body_text
    found = re.search(rf"https?://\S+{re.escape(path)}\S+", body)
    assert found, body
    assert found[0].startswith(live.base_url), found[0]
    return found[0]


def register_third_party(live, tenant: str, name: str) -> str:
    """A portal that is not first-party (the consent page shows), redirecting to the demo portal."""
    session = live.app.extensions["idp"].database.session()
    try:
        client, _secret = register_client(session, live.app.extensions["idp"].tenants[tenant], name=name,
                                          redirect_uris=[f"{live.portals[tenant]}/callback"])
        session.commit()
        return client.client_id
    finally:
        session.close()


def virtual_authenticator(page: Page) -> tuple[object, str]:
    """Chromium's virtual authenticator (DevTools protocol, WebAuthn domain) playing a phone's
    built-in one: resident keys, user verification that succeeds. The DevTools session and its id."""
    devtools = page.context.new_cdp_session(page)
    devtools.send("WebAuthn.enable")
    added = devtools.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True}})
    return devtools, added["authenticatorId"]


def without_passkey_autofill(page: Page) -> None:
    """A browser that offers no passkey in the identifier's autofill: "Me connecter en 1 clic" does it."""
    page.add_init_script("PublicKeyCredential.isConditionalMediationAvailable = "
                         "() => Promise.resolve(false);")


def wrong(code: str) -> str:
    """Another 6-digit code than ``code``."""
    return str((int(code[0]) + 1) % 10) + code[1:]


@dataclass
class Member:
    """One member's browser, on one tenant's provider and portal."""

    page: Page
    live: object
    tenant: str
    check: Checkpoint

    @property
    def provider(self) -> str:
        return f"{self.live.base_url}/{self.tenant}"

    @property
    def portal(self) -> str:
        return self.live.portals[self.tenant]

    # --- what every page must be -------------------------------------------------------------

    def sees(self, name: str, heading: str | None = None) -> None:
        """This page: one <h1> (with that text, when given), then the checkpoint."""
        h1 = self.page.locator("h1")
        expect(h1).to_have_count(1)
        if heading is not None:
            expect(h1).to_have_text(heading)
        self.check(self.page, f"{self.tenant}-{name}")

    def sees_errors(self, name: str, *messages: str) -> None:
        """A failed submit: the error summary has the focus, says ``messages``, and the title says so."""
        summary = self.page.locator(".error-summary")
        expect(summary).to_be_focused()
        expect(summary).to_have_attribute("role", "alert")
        for message in messages:
            expect(summary).to_contain_text(message)
        expect(self.page).to_have_title(re.compile(r"^Erreur"))
        for field in self.page.locator('[aria-invalid="true"]').all():
            described = (field.get_attribute("aria-describedby") or "").split()
            assert any(self.page.locator(f"#{ref}.error").count() for ref in described), (
                f"{field.get_attribute('id')} in error but not described by its message")
        self.sees(name)

    def click(self, role: str, name: str) -> None:
        self.page.get_by_role(role, name=name, exact=True).click()

    # --- the portal ---------------------------------------------------------------------------

    def opens_portal(self) -> None:
        self.page.goto(self.portal)
        self.sees("portal-home")

    def signs_in_from_portal(self, **authorize) -> None:
        """"Se connecter", or the portal's /login with extra authorization parameters."""
        if authorize:
            self.page.goto(f"{self.portal}/login?{urlencode(authorize)}")
        else:
            self.click("link", "Se connecter")

    def authorizes(self, client_id: str) -> None:
        """The authorization request of another portal (PKCE S256), straight to the provider."""
        _verifier, challenge = pkce_pair()
        self.page.goto(f"{self.provider}/authorize?" + urlencode({
            "response_type": "code", "client_id": client_id, "redirect_uri": f"{self.portal}/callback",
            "scope": "openid profile member", "state": "third-party", "code_challenge": challenge,
            "code_challenge_method": "S256"}))

    def refuses_third_party(self, account: DemoAccount, name: str) -> None:
        """Another portal asks for the member's data: sign in, the consent page, "Refuser"."""
        self.authorizes(register_third_party(self.live, self.tenant, name))
        self.is_asked_password()
        self.gives_password(account.identifier, account.password)
        self.receives_code("email")
        self.enters_code("email")
        self.page.wait_for_url(f"{self.provider}/consent?interaction=*")
        self.sees("consent", f"{name} souhaite accéder à votre compte")
        self.click("button", "Refuser")
        self.page.wait_for_url(f"{self.portal}/callback?*")
        expect(self.page.locator("#error-code")).to_have_text("access_denied")
        self.sees("portal-error", "La connexion n’a pas abouti")

    def is_back_at_portal(self, given_name: str) -> None:
        self.page.wait_for_url(f"{self.portal}/")
        expect(self.page.locator(".greeting")).to_have_text(f"Bonjour {given_name}")
        self.sees("portal-signed-in")

    def goes_back_once_signed_in(self, given_name: str) -> None:
        """The Back button from the portal: the last sign-in page says the member is signed in,
        and leads back to the portal."""
        self.page.go_back()
        self.sees("already-signed-in", "Connexion déjà effectuée")
        expect(self.page.get_by_role("link", name="Aller à mon compte")).to_be_visible()
        self.page.get_by_role("link", name="Retourner sur", exact=False).click()
        self.is_back_at_portal(given_name)

    def claim(self, name: str) -> str:
        """An ID token claim as the portal shows it."""
        table = self.page.get_by_role("table", name="Revendications du jeton d’identité")
        row = table.get_by_role("row").filter(has=self.page.get_by_role("rowheader", name=name, exact=True))
        return row.get_by_role("cell").inner_text()

    def logs_out(self) -> None:
        """RP-initiated logout: confirm at the provider, back at the portal, signed out."""
        self.click("button", "Se déconnecter")
        self.page.wait_for_url(f"{self.provider}/logout/confirm")
        self.sees("logout", "Voulez-vous vous déconnecter\u00a0?")
        self.click("button", "Me déconnecter")
        self.page.wait_for_url(f"{self.portal}/?*")
        expect(self.page.get_by_role("status")).to_contain_text("Déconnexion réussie.")
        expect(self.page.get_by_role("link", name="Se connecter", exact=True)).to_be_visible()
        self.sees("portal-signed-out")

    # --- signing in ---------------------------------------------------------------------------

    def starts_sign_in(self) -> None:
        """From the portal's home to the provider's sign-in page."""
        self.opens_portal()
        self.signs_in_from_portal()
        self.is_asked_password()

    def is_asked_password(self) -> None:
        """The sign-in page: the portal's authorization request (or its restart) answered with
        it, or its own address (after a wrong password, or from a page outside a request)."""
        self.page.wait_for_url(re.compile(rf"{re.escape(self.provider)}/(authorize(/restart)?|login)(\?.*)?$"))
        self.sees("sign-in")

    def gives_password(self, identifier: str, password: str) -> None:
        self.page.get_by_label(IDENTIFIER_LABEL[self.tenant], exact=True).fill(identifier)
        self.page.get_by_label("Mot de passe", exact=True).fill(password)
        self.click("button", "Me connecter")

    def gives_wrong_password(self, identifier: str) -> None:
        self.gives_password(identifier, "Not-The-Password-1!")
        self.sees_errors("sign-in-error", "Identifiant ou mot de passe incorrect.")

    def receives_code(self, channel: str) -> None:
        """The code page: choose the channel; the code is in the outbox once the entry page shows."""
        self.page.wait_for_url(f"{self.provider}/login/code")
        self.sees("code-choice", "Recevoir un code de connexion")
        self.page.get_by_label(CODE_CHANNEL_LABEL[channel], exact=False).check()
        self.click("button", "Recevoir mon code")
        expect(self.page.get_by_label("Code à 6 chiffres")).to_be_visible()
        self.sees("code-entry", "Saisissez votre code")

    def enters_code(self, channel: str, *, remember: bool = False, first_wrong: bool = False) -> None:
        code = code_in(self.live, "otp_code", channel)
        field = self.page.get_by_label("Code à 6 chiffres")
        if first_wrong:
            field.fill(wrong(code))
            self.click("button", "Valider")
            self.sees_errors("code-error", "Code incorrect. Il vous reste 4 essais.")
            field = self.page.get_by_label("Code à 6 chiffres")
        field.fill(code)
        if remember:
            self.page.get_by_label("Se souvenir de moi", exact=False).check()
        self.click("button", "Valider")

    def signs_in(self, identifier: str, password: str, given_name: str, channel: str, *,
                 remember: bool = False, first_time: bool = False) -> None:
        """From the portal's home to the portal signed in, with a code by ``channel``
        (and, the first time at Miel, the terms)."""
        self.starts_sign_in()
        self.gives_password(identifier, password)
        self.receives_code(channel)
        self.enters_code(channel, remember=remember)
        if first_time and self.tenant == "miel":
            self.accepts_terms()
        self.is_back_at_portal(given_name)

    def signs_in_as(self, account: DemoAccount, channel: str, *, remember: bool = False) -> None:
        self.signs_in(account.identifier, account.password, account.given_name, channel,
                      remember=remember)

    def accepts_terms(self) -> None:
        """Miel asks its terms and communication preferences at the first sign-in (SPEC §3.2)."""
        self.page.wait_for_url(f"{self.provider}/login/terms")
        self.sees("terms", "Avant de continuer")
        # The preferences are optional: they start from their defaults, the terms alone are asked.
        statements = self.page.get_by_role("group", name="Vos relevés de remboursement")
        expect(statements.get_by_label("Par la poste")).to_be_checked()
        expect(self.page.get_by_label("J’accepte de recevoir des offres", exact=False)).not_to_be_checked()
        self.click("button", "Continuer")
        self.sees_errors("terms-error", "Vous devez accepter les mentions légales")
        expect(self.page.locator(".error-summary li")).to_have_count(1)
        self.page.get_by_label("J’accepte les mentions légales", exact=False).check()
        self.page.get_by_role("group", name="Vos relevés de remboursement").get_by_label(
            "Par la poste").check()
        self.page.get_by_role("group", name="Vos autres documents", exact=False).get_by_label(
            "Par e-mail").check()
        self.click("button", "Continuer")

    # --- time limits (WCAG 2.2.1) --------------------------------------------------------------

    def time_runs_short(self, limit: int = 0):
        """The page's clock (page.clock installed before it loaded; the server's is untouched) jumps
        to the warning of its ``limit``-th time limit; that limit's message."""
        notice = self.page.locator("[data-deadline]").nth(limit)
        left = int(notice.get_attribute("data-deadline"))
        self.page.clock.fast_forward((left - int(notice.get_attribute("data-deadline-warn")) + 1) * 1000)
        return notice.locator("[data-deadline-message]")

    def asks_more_time(self) -> None:
        """The sign-in page's warning, then "J’ai besoin de plus de temps"."""
        message = self.time_runs_short()
        expect(message).to_contain_text("Avez-vous besoin de plus de temps\u00a0?")
        self.sees("sign-in-time-warning")
        self.click("button", "J’ai besoin de plus de temps")
        expect(message).to_contain_text("C’est fait\u00a0: vous avez plus de temps.")
        self.sees("sign-in-time-extended")

    def runs_out_of_time_and_starts_again(self) -> None:
        message = self.page.locator("[data-deadline-message]").first
        self.page.clock.fast_forward(int(self.page.locator("[data-deadline]").first.get_attribute(
            "data-deadline")) * 1000 + 60_000)
        expect(message).to_contain_text("Le temps pour vous connecter est écoulé.")
        self.sees("sign-in-time-out")
        self.click("link", "Recommencer la connexion")
        self.is_asked_password()

    def is_warned_the_code_expires(self) -> None:
        """On the code page, whose one limit is the code's: the warning, then the time out."""
        expect(self.page.locator("[data-deadline]")).to_have_count(1)
        message = self.time_runs_short(0)
        expect(message).to_contain_text("Votre code expire dans moins d’une minute.")
        expect(self.page.get_by_role("button", name="Recevoir un nouveau code")).to_be_visible()
        self.sees("code-time-warning")
        self.page.clock.fast_forward(61_000)
        expect(message).to_have_text("Ce code a expiré. Demandez un nouveau code.")
        self.sees("code-time-out")

    def is_warned_the_page_expires(self, name: str) -> None:
        """A form's inactivity warning, its page's only limit; it stays in view at the bottom."""
        message = self.time_runs_short()
        expect(message).to_have_text("Cette page expire dans moins de 2 minutes faute d’activité. "
                                     "Avez-vous besoin de plus de temps\u00a0?")
        self.page.evaluate("window.scrollTo(0, 0)")
        expect(self.page.locator(".deadline-session")).to_be_in_viewport()
        self.sees(f"{name}-time-warning")

    def keeps_the_page(self, name: str) -> None:
        self.click("button", "J’ai besoin de plus de temps")
        message = self.page.locator(".deadline-session [data-deadline-message]")
        expect(message).to_have_text("C’est fait\u00a0: vous avez plus de temps. Pour votre sécurité, "
                                     "cette page expire après 30 minutes sans activité.")
        expect(message).to_be_focused()
        self.sees(f"{name}-time-extended")

    def lets_the_page_expire(self, name: str) -> None:
        notice = self.page.locator(".deadline-session")
        self.page.clock.fast_forward(int(notice.get_attribute("data-deadline")) * 1000 + 60_000)
        expect(notice.locator("[data-deadline-message]")).to_contain_text(
            "Cette page a expiré faute d’activité.")
        self.sees(f"{name}-time-out")
        self.click("link", "Charger la page de nouveau")

    # --- registration -------------------------------------------------------------------------

    def starts_registration(self) -> None:
        self.opens_portal()
        self.click("link", "Créer mon compte")
        self.page.wait_for_url(f"{self.provider}/register")

    def current_step(self, text: str) -> None:
        """The step indicator: one current step, said in words, not by colour alone."""
        current = self.page.get_by_role("list", name="Étapes").locator('[aria-current="step"]')
        expect(current).to_have_count(1)
        expect(current).to_contain_text(text)
        expect(current).to_contain_text("(en cours)")

    def registers_by_member_number(self, email: str) -> None:
        """Malakoff (SPEC §3.1): one page; a mismatched confirmation first."""
        self.sees("register", f"Créer mon compte {self.tenant_portal}")
        self.page.get_by_label("Numéro d’adhérent").fill("23456789")
        self.page.get_by_label("Nom", exact=True).fill("Dupont Morel")
        self.page.get_by_label("Prénom").fill("Jean-Pierre")
        self.page.get_by_label("Date de naissance").fill("23/11/1949")
        self.page.get_by_label("Adresse e-mail", exact=True).fill(email)
        self.page.get_by_label("Confirmation de l’adresse e-mail").fill(email.replace("@", ".x@"))
        self.page.get_by_label("Téléphone mobile").fill("06 12 34 56 78")
        self.page.get_by_label("J’accepte les mentions légales", exact=False).check()
        self.click("button", "Recevoir le code par SMS")
        self.sees_errors("register-error", "Le formulaire contient des erreurs",
                         "Les deux adresses emails ne sont pas identiques.")
        # The other fields kept what was typed.
        expect(self.page.get_by_label("Numéro d’adhérent")).to_have_value("23456789")
        expect(self.page.get_by_label("J’accepte les mentions légales", exact=False)).to_be_checked()
        self.page.get_by_label("Confirmation de l’adresse e-mail").fill(email)
        self.click("button", "Recevoir le code par SMS")
        self.page.wait_for_url(f"{self.provider}/register/code")
        self.current_step("Étape 2")
        self.types_registration_code("+33612345678")

    def types_registration_code(self, mobile: str, *, by_post: bool = False) -> None:
        """The last step, both tenants: the code of the SMS that proves the mobile; then the
        activation email, or (``by_post``: no contact on file) a letter."""
        self.sees("register-code")
        sms = newest_message(self.live, "registration_code", "sms")
        assert sms.recipient == mobile
        self.page.get_by_label("Code à 6 chiffres").fill(code_in(self.live, "registration_code", "sms"))
        self.click("button", "Valider")
        if by_post:
            self.sees("register-letter-sent", "Un courrier va vous être envoyé")
            return
        self.sees("register-sent", "Consultez votre messagerie")
        expect(self.page.locator("main")).to_contain_text("spam")

    def registers_without_contacts_on_file(self, email: str, mobile: str) -> None:
        """Malakoff, a member whose record has no email and no mobile: the code comes by post."""
        self.page.get_by_label("Numéro d’adhérent").fill("77889900")
        self.page.get_by_label("Nom", exact=True).fill("Müller")
        self.page.get_by_label("Prénom").fill("François-Xavier")
        self.page.get_by_label("Date de naissance").fill("25/05/1958")
        self.page.get_by_label("Adresse e-mail", exact=True).fill(email)
        self.page.get_by_label("Confirmation de l’adresse e-mail").fill(email)
        self.page.get_by_label("Téléphone mobile").fill(mobile)
        self.page.get_by_label("J’accepte les mentions légales", exact=False).check()
        self.click("button", "Recevoir le code par SMS")
        self.page.wait_for_url(f"{self.provider}/register/code")
        self.types_registration_code(f"+33{mobile.replace(' ', '')[1:]}", by_post=True)

    def types_the_code_of_the_letter(self, member_number: str) -> None:
        """The letter from the outbox (its PDF as printed), its code typed on the page it names."""
        letter = newest_message(self.live, "registration_letter", "letter")
        pdf = self.page.request.get(f"{self.live.base_url}/_outbox/{letter.id}/letter.pdf")
        assert pdf.ok and pdf.headers["content-type"] == "application/pdf"
        code = code_of_the_letter(self.live)
        self.click("link", "J’ai reçu mon code par courrier")
        self.page.wait_for_url(f"{self.provider}/register/letter")
        self.sees("register-letter", "J’ai reçu mon code par courrier")
        self.page.get_by_label("Numéro d’adhérent").fill(member_number)
        self.page.get_by_label("Code reçu par courrier").fill("ZZZZ-ZZZZ")
        self.click("button", "Valider")
        self.sees_errors("register-letter-error", "Il vous reste 4 essais.")
        self.page.get_by_label("Code reçu par courrier").fill(code.lower().replace("-", " "))
        self.click("button", "Valider")
        self.sees("register-sent", "Consultez votre messagerie")

    def registers_by_nir(self, email: str) -> None:
        """Miel (SPEC §3.2): identity with the NIR, contact, SMS code."""
        self.current_step("Étape 1")
        self.click("button", "Continuer")
        self.sees_errors("register-identity-error", "Saisissez votre numéro de sécurité sociale.")
        self.page.get_by_label("Numéro de sécurité sociale").fill("2 62 08 2A 004 036 07")
        self.page.get_by_label("Date de naissance").fill("30/08/1962")
        self.page.get_by_label("Département de naissance").select_option(value="2A")
        self.page.get_by_label("Nom", exact=True).fill("N'Diaye")
        self.page.get_by_label("Prénom").fill("Françoise")
        self.sees("register-identity")
        self.click("button", "Continuer")
        self.page.wait_for_url(f"{self.provider}/register/contact")
        self.current_step("Étape 2")
        self.page.get_by_label("Adresse e-mail", exact=True).fill(email)
        self.page.get_by_label("Confirmation de l’adresse e-mail").fill(email)
        self.page.get_by_label("Téléphone mobile").fill("07 81 22 33 44")
        self.goes_back_a_step_and_forward(email)
        # Miel asks the terms at the first sign-in, not here.
        expect(self.page.get_by_label("J’accepte les mentions légales", exact=False)).to_have_count(0)
        self.sees("register-contact")
        self.click("button", "Recevoir le code par SMS")
        self.page.wait_for_url(f"{self.provider}/register/code")
        self.current_step("Étape 3")
        self.types_registration_code("+33781223344")

    def goes_back_a_step_and_forward(self, email: str) -> None:
        """Back to step 1 and on again: what was typed on either step is still there."""
        self.click("button", "Revenir à l’étape précédente")
        self.page.wait_for_url(f"{self.provider}/register")
        self.current_step("Étape 1")
        expect(self.page.get_by_label("Numéro de sécurité sociale")).to_have_value("2 62 08 2A 004 036 07")
        expect(self.page.get_by_label("Département de naissance")).to_have_value("2A")
        expect(self.page.get_by_label("Prénom")).to_have_value("Françoise")
        self.click("button", "Continuer")
        self.page.wait_for_url(f"{self.provider}/register/contact")
        expect(self.page.get_by_label("Adresse e-mail", exact=True)).to_have_value(email)
        expect(self.page.get_by_label("Confirmation de l’adresse e-mail")).to_have_value(email)
        expect(self.page.get_by_label("Téléphone mobile")).to_have_value("07 81 22 33 44")

    def activates(self, password: str, birth_date: str | None = None) -> None:
        """The activation link from the outbox: choose the password, then the welcome page."""
        self.page.goto(link_in(self.live, "activation", "/activate/"))
        self.sees("activate", "Choisissez votre mot de passe")
        for code in BROWSER_RULES:  # nothing checked yet
            expect(self.page.locator(f'#password-rules li[data-rule="{code}"]')).not_to_have_attribute(
                "data-met", re.compile(".*"))
        if birth_date:
            self.page.get_by_label("Date de naissance").fill(birth_date)
        self.chooses_password(password, "activate")
        self.click("button", "Activer mon compte")
        self.page.wait_for_url(f"{self.provider}/welcome")
        self.sees("welcome", f"Bienvenue sur votre {self.tenant_portal}")

    @property
    def tenant_portal(self) -> str:
        return self.live.app.extensions["idp"].tenants[self.tenant].portal_name

    # --- passwords ----------------------------------------------------------------------------

    def chooses_password(self, password: str, name: str) -> None:
        """Type the password key by key and watch the live checklist, which describes the field."""
        field = self.page.get_by_label("Nouveau mot de passe", exact=True)
        assert "password-rules" in (field.get_attribute("aria-describedby") or "").split()
        rules = self.page.locator("#password-rules")
        field.press_sequentially("abc")
        expect(rules.locator('li[data-rule="lowercase"]')).to_have_attribute("data-met", "true")
        expect(rules.locator('li[data-rule="uppercase"]')).to_have_attribute("data-met", "false")
        expect(rules.locator('li[data-rule="length"]')).to_have_attribute("data-met", "false")
        self.sees(f"{name}-typing")
        field.fill(password)
        field.dispatch_event("input")
        for code in BROWSER_RULES:
            expect(rules.locator(f'li[data-rule="{code}"]')).to_have_attribute("data-met", "true")
        expect(rules.locator('li[data-rule="uppercase"] .password-rule-status')).to_have_text("respecté")
        self.confirms_password(password, name)

    def confirms_password(self, password: str, name: str) -> None:
        """The confirmation says live whether it matches; once it does, an earlier error on it
        from the server goes."""
        confirm = self.page.get_by_label("Confirmation du mot de passe")
        match = self.page.locator("#password_confirm-match")
        assert "password_confirm-match" in (confirm.get_attribute("aria-describedby") or "").split()
        confirm.fill(password[:-1])
        expect(match).to_be_visible()
        expect(match).to_have_attribute("data-met", "false")
        expect(match).to_contain_text("Les mots de passe ne sont pas identiques.")
        confirm.fill(password)
        expect(match).to_have_attribute("data-met", "true")
        expect(match).to_contain_text("Les mots de passe sont identiques.")
        error = self.page.locator("#password_confirm-error")
        if error.count():  # after a submit the server refused for this field
            expect(error).to_be_hidden()
        expect(confirm).not_to_have_attribute("aria-invalid", "true")
        self.sees(f"{name}-confirmed")

    # --- the account page ---------------------------------------------------------------------

    def opens_account(self, given_name: str) -> None:
        self.page.goto(f"{self.provider}/account")
        self.sees("account", f"Bonjour {given_name}")

    def adds_passkey(self, password: str, name: str) -> None:
        """From the account page: the password again, then the device creates the passkey."""
        self.click("link", "Ajouter une clé d’accès")
        self.page.wait_for_url(f"{self.provider}/account/passkeys/new")
        self.sees("passkey-password", "Ajouter une clé d’accès")
        self.page.get_by_label("Mot de passe actuel", exact=True).fill(password)
        self.click("button", "Continuer")
        self.page.wait_for_url(f"{self.provider}/account/passkeys/create")
        self.sees("passkey-create", "Ajouter une clé d’accès")
        self.page.get_by_label("Nom de la clé d’accès", exact=True).fill(name)
        self.click("button", "Créer ma clé d’accès")
        self.page.wait_for_url(f"{self.provider}/account?changed=passkey-added")
        passkeys = self.page.get_by_role("region", name="Clés d’accès")
        expect(passkeys).to_contain_text(name)
        expect(passkeys).to_contain_text("Jamais utilisée")
        self.sees("account-passkey-added")

    def opens_passkey(self, name: str) -> None:
        self.page.get_by_role("region", name="Clés d’accès").get_by_role(
            "link", name=f"Renommer ou retirer {name}").click()
        self.page.wait_for_url(re.compile(rf"{re.escape(self.provider)}/account/passkeys/[\w-]+$"))
        self.sees("passkey-manage")

    def renames_passkey(self, name: str, new_name: str) -> None:
        self.opens_passkey(name)
        self.page.get_by_label("Nom de la clé d’accès", exact=True).fill(new_name)
        self.click("button", "Renommer")
        self.page.wait_for_url(f"{self.provider}/account?changed=passkey-renamed")
        expect(self.page.get_by_role("region", name="Clés d’accès")).to_contain_text(new_name)
        self.sees("account-passkey-renamed")

    def removes_passkey(self, name: str) -> None:
        self.opens_passkey(name)
        self.click("button", "Retirer cette clé d’accès")
        self.page.wait_for_url(f"{self.provider}/account?changed=passkey-removed")
        expect(self.page.get_by_role("status")).to_contain_text("Votre clé d’accès est retirée.")
        expect(self.page.get_by_role("region", name="Clés d’accès")).not_to_contain_text(name)
        self.sees("account-passkey-removed")

    def signs_in_with_passkey(self) -> None:
        """"Me connecter en 1 clic": the device's passkey, no password, no code."""
        self.click("button", "Me connecter en 1 clic")

    def changes_password(self, current: str, new: str) -> None:
        self.click("link", "Changer mon mot de passe")
        self.sees("change-password", "Changer mon mot de passe")
        self.page.get_by_label("Mot de passe actuel").fill("Not-The-Password-1!")
        self.page.get_by_label("Nouveau mot de passe", exact=True).fill(new)
        self.page.get_by_label("Confirmation du mot de passe").fill(new)
        self.click("button", "Enregistrer mon mot de passe")
        self.sees_errors("change-password-error", "Mot de passe actuel incorrect.")
        self.page.get_by_label("Mot de passe actuel").fill(current)
        self.chooses_password(new, "change-password")
        self.click("button", "Enregistrer mon mot de passe")
        expect(self.page.get_by_role("status")).to_contain_text("Votre mot de passe est changé.")
        self.sees("account-password-changed")

    def changes_mobile(self, password: str, number: str, e164: str) -> None:
        self.click("link", "Changer mon numéro de mobile")
        self.sees("change-mobile", "Changer mon numéro de mobile")
        self.page.get_by_label("Mot de passe actuel").fill(password)
        self.page.get_by_label("Nouveau numéro de mobile").fill("01 23")
        self.click("button", "Recevoir le code par SMS")
        self.sees_errors("change-mobile-error", "Saisissez un numéro de téléphone mobile valide")
        self.page.get_by_label("Mot de passe actuel").fill(password)
        self.page.get_by_label("Nouveau numéro de mobile").fill(number)
        self.click("button", "Recevoir le code par SMS")
        self.page.wait_for_url(f"{self.provider}/account/mobile/confirm")
        self.sees("confirm-mobile", "Code reçu par SMS")
        sms = newest_message(self.live, "mobile_change", "sms")
        assert sms.recipient == e164
        self.page.get_by_label("Code à 6 chiffres").fill(code_in(self.live, "mobile_change", "sms"))
        self.click("button", "Valider")
        expect(self.page.get_by_role("status")).to_contain_text("Votre numéro de mobile est enregistré.")
        self.sees("account-mobile-changed")

    def changes_preferences(self) -> None:
        """Miel: from the account page, gives the marketing consent, then withdraws it the same way."""
        for consent, shown in ((True, "Oui, je les accepte"), (False, "Non")):
            self.click("link", "Modifier mes préférences de communication")
            self.sees("preferences", "Mes préférences de communication")
            self.page.get_by_label("J’accepte de recevoir des offres", exact=False).set_checked(consent)
            self.click("button", "Enregistrer mes préférences")
            expect(self.page.get_by_role("status")).to_contain_text(
                "Vos préférences de communication sont enregistrées.")
            expect(self.page.locator("#preferences-title + dl")).to_contain_text(shown)
            self.sees("account-preferences-changed")

    def changes_email(self, password: str, new: str) -> None:
        self.click("link", "Changer mon adresse e-mail")
        self.sees("change-email", "Changer mon adresse e-mail")
        self.page.get_by_label("Mot de passe actuel").fill(password)
        self.page.get_by_label("Nouvelle adresse e-mail", exact=True).fill(new)
        self.page.get_by_label("Confirmation de la nouvelle adresse e-mail").fill("autre" + new)
        self.click("button", "Recevoir le code par e-mail")
        self.sees_errors("change-email-error", "Les deux adresses emails ne sont pas identiques.")
        self.page.get_by_label("Mot de passe actuel").fill(password)
        self.page.get_by_label("Confirmation de la nouvelle adresse e-mail").fill(new)
        self.click("button", "Recevoir le code par e-mail")
        self.page.wait_for_url(f"{self.provider}/account/email/confirm")
        self.sees("confirm-email", "Code reçu par e-mail")
        code = code_in(self.live, "email_code", "email")
        assert newest_message(self.live, "email_code").recipient == new
        self.page.get_by_label("Code à 6 chiffres").fill(wrong(code))
        self.click("button", "Valider")
        self.sees_errors("confirm-email-error", "Code incorrect.")
        self.page.get_by_label("Code à 6 chiffres").fill(code)
        self.click("button", "Valider")
        expect(self.page.get_by_role("status")).to_contain_text("Votre adresse e-mail est enregistrée.")
        self.sees("account-email-changed")

    def updates_identifier(self, email_on_file: str) -> None:
        """A legacy account during the migration: confirm the email that becomes the identifier."""
        self.page.wait_for_url(f"{self.provider}/login/update-identifier")
        self.sees("update-identifier", "Mettre à jour mon identifiant")
        field = self.page.get_by_label("Votre adresse e-mail, votre nouvel identifiant")
        expect(field).to_have_value(email_on_file)
        field.fill("pas-une-adresse")
        self.click("button", "Continuer")
        self.sees_errors("update-identifier-error", "Saisissez une adresse e-mail valide")
        self.page.get_by_label("Votre adresse e-mail, votre nouvel identifiant").fill(email_on_file)
        self.click("button", "Continuer")

    def revokes_device(self) -> None:
        """This browser, marked as such; "Retirer" asks first, on a page of its own."""
        devices = self.page.locator(".devices li")
        expect(devices).to_have_count(1)
        expect(devices).to_contain_text("(ce navigateur)")
        devices.get_by_role("link", name="Retirer").click()
        self.sees("revoke-device", "Retirer cet appareil de confiance\u00a0?")
        expect(self.page.locator(".devices li")).to_contain_text("(ce navigateur)")
        self.click("button", "Retirer cet appareil")
        expect(self.page.get_by_role("status")).to_contain_text("L’appareil est retiré")
        expect(self.page.get_by_text("Aucun appareil de confiance.")).to_be_visible()
        self.sees("account-no-device")

    def deletes_account(self, password: str) -> None:
        self.click("link", "Supprimer mon compte")
        self.sees("delete-account", "Supprimer mon compte")
        self.page.get_by_label("Mot de passe actuel").fill(password)
        self.click("button", "Supprimer mon compte")
        self.sees_errors("delete-account-error", "Cochez la case pour confirmer la suppression.")
        self.page.get_by_label("Mot de passe actuel").fill(password)
        self.page.get_by_label("Je confirme vouloir supprimer mon compte.").check()
        self.click("button", "Supprimer mon compte")
        self.sees("account-deleted", "Votre compte est supprimé")

    # --- recovery -----------------------------------------------------------------------------

    def forgets_password(self, identifier: str) -> None:
        """From the sign-in page to the reset link in the outbox."""
        self.click("link", "Mot de passe oublié\u00a0?")
        self.sees("forgot-password", "Mot de passe oublié")
        self.click("button", "Recevoir un lien")
        self.sees_errors("forgot-password-error", "Saisissez votre identifiant.")
        self.page.get_by_label(IDENTIFIER_LABEL[self.tenant], exact=True).fill(identifier)
        self.click("button", "Recevoir un lien")
        self.sees("forgot-password-sent", "Consultez votre messagerie")

    def resets_password(self, new: str) -> None:
        self.page.goto(link_in(self.live, "password_reset", "/reset-password/"))
        self.sees("reset-password", "Choisissez un nouveau mot de passe")
        self.page.get_by_label("Nouveau mot de passe", exact=True).fill("password")
        self.page.get_by_label("Confirmation du mot de passe").fill("password")
        self.click("button", "Enregistrer mon mot de passe")
        self.sees_errors("reset-password-error", "Ce mot de passe ne respecte pas toutes les règles")
        self.page.get_by_label("Nouveau mot de passe", exact=True).fill(new)
        self.page.get_by_label("Confirmation du mot de passe").fill(new + "?")
        self.click("button", "Enregistrer mon mot de passe")
        self.sees_errors("reset-password-mismatch", "Les deux mots de passe ne sont pas identiques.")
        self.chooses_password(new, "reset-password")
        self.click("button", "Enregistrer mon mot de passe")
        self.sees("reset-done", "Votre mot de passe est changé")

    def forgets_identifier(self, nir: str, birth_date: str, department: str, last: str, first: str) -> str:
        """Miel: prove who you are; returns the identifier email's text."""
        self.click("link", "J’ai oublié mon numéro d’adhérent")
        self.sees("forgot-identifier", "Numéro d’adhérent oublié")
        self.page.get_by_label("Numéro de sécurité sociale").fill(nir[:-1] + "0")
        self.click("button", "Recevoir mon numéro")
        self.sees_errors("forgot-identifier-error", "Saisissez votre date de naissance.")
        self.page.get_by_label("Numéro de sécurité sociale").fill(nir)
        self.page.get_by_label("Date de naissance").fill(birth_date)
        self.page.get_by_label("Département de naissance").select_option(value=department)
        self.page.get_by_label("Nom", exact=True).fill(last)
        self.page.get_by_label("Prénom").fill(first)
        self.click("button", "Recevoir mon numéro")
        self.sees("forgot-identifier-sent", "Consultez votre messagerie")
        return newest_message(self.live, "identifier").body_text

    def recovers_login_email(self, member_number: str) -> str:
        """Where members sign in with their email: the member number, then the address is told."""
        self.sees("forgot-identifier", "Identifiant oublié")
        self.page.get_by_label("Numéro d’adhérent").fill("1234")
        self.click("button", "Recevoir mon identifiant")
        self.sees_errors("forgot-identifier-error", "Le numéro d’adhérent comporte 8 chiffres.")
        self.page.get_by_label("Numéro d’adhérent").fill(member_number)
        self.click("button", "Recevoir mon identifiant")
        self.sees("forgot-identifier-sent", "Consultez votre messagerie")
        return newest_message(self.live, "identifier_email").body_text

    # --- the accessibility statement ----------------------------------------------------------

    def reads_accessibility_statement(self) -> None:
        self.page.get_by_role("contentinfo").get_by_role(
            "link", name="Accessibilité\u00a0: partiellement conforme").click()
        self.page.wait_for_url(f"{self.provider}/accessibilite")
        self.sees("accessibility", "Déclaration d’accessibilité")
