"""Rendering pages: the tenant's own template first, and what every page's layout is given."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass

from babel.support import NullTranslations
from flask import current_app, g, render_template, request, session, url_for
from flask.templating import Environment
from flask_babel import get_locale, get_translations, ngettext
from jinja2 import Template, TemplateNotFound, pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from idp import deadlines, timewords
from idp.accounts.devices import device_in_words
from idp.extensions import services
from idp.forms import TOKEN_PROMISED
from idp.frames import Frame
from idp.frames import marks as frames_marks
from idp.tenancy import LOCALES, Tenant
from idp.web.locale import lang_url

# The catalogue of the page being rendered (``render``), found once for the page and the macros
# it imports: Flask-Babel's own gettext looks up the request's locale and catalogue again at
# every string, and a page has dozens.
_page_catalogue: ContextVar[NullTranslations | None] = ContextVar("page_catalogue", default=None)


class Templates(Environment):
    """Flask's Jinja environment, remembering the names it did not find.

    A page looks for its tenant's own version first (``render``), as a message does
    (``idp.channels.assembly``), and most have none; Jinja caches the templates it finds, not
    the names it does not, so each render searched every template folder for the missing one
    again. Unless templates are reloaded (``TEMPLATES_AUTO_RELOAD``), none appears while the
    provider runs.
    """

    def __init__(self, app, **options):
        super().__init__(app, **options)
        self._absent: set[str] = set()
        # Framed pages (``framed``), by page, tenant, language and shape.
        self.frames: dict[tuple[Hashable, ...], Frame] = {}

    def select_template(self, names, parent=None, globals=None):
        if not isinstance(names, list | tuple) or len(names) < 2:
            return super().select_template(names, parent, globals)
        *earlier, last = names
        for name in earlier:
            if isinstance(name, str) and name in self._absent:
                continue
            try:
                return self.get_template(name, parent, globals)
            except TemplateNotFound:
                if not self.auto_reload:
                    self._absent.add(name)
        return self.get_template(last, parent, globals)


def render(name: str, status: int = 200, **context):
    """Render a page, the tenant's own version first, then the shared one."""
    tenant = g.get("tenant")
    candidates: list[str | Template] = [f"{tenant.slug}/{name}"] if tenant else []
    candidates.append(f"base/{name}")
    catalogue = _page_catalogue.set(get_translations())
    try:
        return render_template(candidates, **context), status
    finally:
        _page_catalogue.reset(catalogue)


def framed(name: str, shape: Hashable, values: Mapping[str, str],
           context: Callable[[Mapping[str, str]], dict], status: int = 200):
    """A page rendered once for each tenant, language and ``shape``, and filled with each
    request's ``values`` (``render`` builds it all at every request, some 1 ms of a sign-in page).

    ``context(values)`` is the page's context with those values: given marks in their place, it
    makes the frame. So the page's markup must depend on nothing but the tenant, the language and
    ``shape`` (each a value the caller checks), and write each value as it is, escaped: ``Frame``
    refuses a page that does more with one. Two values every page may have are the layout's: the
    links to the page in the other languages (``lang_url``), and ``csrf_token``, the request's
    token (Flask-WTF's, made beforehand), for the pages with a form. Rendered each time when
    templates are reloaded (``TEMPLATES_AUTO_RELOAD``).
    """
    environment = current_app.jinja_env
    locale = _locale()
    values = {**values, **{f"lang_{code}": lang_url(code) for code in LOCALES if code != locale}}
    if environment.auto_reload:
        return render(name, status, **context(values), lang_url=lambda code: values[f"lang_{code}"])
    tenant = g.get("tenant")
    key = (name, tenant.slug if tenant else None, locale, shape)
    frames: dict[tuple[Hashable, ...], Frame] = environment.frames  # type: ignore[attr-defined]
    frame = frames.get(key)
    if frame is None:
        marks = frames_marks(values)
        # Flask-WTF hands out the request's token from g: the frame's forms get the mark instead.
        token = g.pop("csrf_token", None)
        if "csrf_token" in marks:
            g.csrf_token = marks["csrf_token"]
        try:
            page, _status = render(name, **context(marks), lang_url=lambda code: marks[f"lang_{code}"])
        finally:
            g.pop("csrf_token", None)
            if token is not None:
                g.csrf_token = token
        frame = frames.setdefault(key, Frame.of(page, marks))
    return frame.fill(values), status


def _locale() -> str:
    return str(get_locale() or "fr")


def moment_filter(value, tenant: Tenant | None = None) -> str:
    """``{{ when|moment }}``: a stored moment in the tenant's zone, in words (pages and
    messages alike; a message names its ``tenant``, a page has the request's)."""
    tenant = tenant or g.get("tenant")
    zone = tenant.zone if tenant else timewords.PARIS
    return timewords.moment(value, zone, _locale())


def day_filter(value) -> str:
    return timewords.day(value, _locale())


def wait_words(seconds: float) -> str:
    """``{{ seconds|wait }}`` and limits' messages: "7 minutes", never "425 secondes"."""
    return timewords.wait(seconds, _locale())


TEMPLATE_FILTERS = {"moment": moment_filter, "day": day_filter, "wait": wait_words,
                    "device": device_in_words}


def page_context() -> dict:
    """What the layout of every page gets (a context processor)."""
    return {"tenant": g.get("tenant"), "locale": str(get_locale()), "locales": LOCALES,
            "lang_url": lang_url, "all_tenants": list(services().tenants.values()),
            "session_time": session_time, "portal_home": portal_home}


def _catalogue() -> NullTranslations:
    """The page's catalogue while ``render`` renders one, else the request's (a message, in the
    locale its sender forces)."""
    return _page_catalogue.get() or get_translations()


@pass_context
def _gettext(context: Context, string: str, **variables) -> str:
    text = _catalogue().ugettext(string)
    if context.eval_ctx.autoescape:
        text = Markup(text)  # noqa: S704 - the catalogue's own text, as Jinja's gettext marks it
    # Formatting leaves a text without "%" as it is (most of a page's).
    return text % variables if variables or "%" in text else text


@pass_context
def _ngettext(context: Context, singular: str, plural: str, num: int, **variables) -> str:
    variables.setdefault("num", num)
    text = _catalogue().ungettext(singular, plural, num)
    return (Markup(text) if context.eval_ctx.autoescape else text) % variables  # noqa: S704


#: The templates' ``gettext`` and ``ngettext`` (so ``_`` and ``{% trans %}`` too), the
#: environment's globals in place of Flask-Babel's: they behave as Jinja's "newstyle" ones do
#: (markup in autoescaped templates, always formatted with their variables).
TEMPLATE_GETTEXT = {"gettext": _gettext, "ngettext": _ngettext}


def portal_home() -> str:
    """Where "my space" is: the brand's portal (the tenant's ``portal_url``), else the sign-in
    page, which leads to the member's account."""
    tenant = g.get("tenant")
    if tenant is None:
        return url_for("index") if "index" in current_app.view_functions else "/"
    return tenant.portal_url or url_for("signin.login", tenant=tenant.slug)


def in_page_order(fields: list, page: str) -> list:
    """Form fields in the order the page shows them (the error summary follows the form, whatever
    the order the form's class declares them in); fields not on the page come last."""
    def position(f) -> int:
        found = page.find(f'id="{f.id}"')
        return found if found >= 0 else len(page)
    return sorted(fields, key=position)


@dataclass(frozen=True)
class SessionTime:
    """The inactivity limit of a page, what it says in words, and where to load the page afresh."""

    deadline: deadlines.Deadline
    message: str
    reload_url: str


def session_time() -> SessionTime | None:
    """The inactivity limit of a page whose forms hold a token of the session (WCAG 2.2.1).

    None for a page without such a form. Called by the layout after the page's content, so a
    form rendered above has made its token by then (or a form built was promised one).
    """
    if "csrf_token" not in g and TOKEN_PROMISED not in g:
        return None
    deadline = session_deadline()
    return SessionTime(deadline, session_time_message(deadline), request.path)


def session_deadline() -> deadlines.Deadline:
    """When the browser's session ends if nothing more happens, as of this response."""
    interface = current_app.session_interface
    return deadlines.session_deadline(interface.expires_in(session), interface.idle)  # type: ignore[attr-defined]


def session_time_message(deadline: deadlines.Deadline) -> str:
    return ngettext("Pour votre sécurité, cette page expire après %(num)s minute sans activité.",
                    "Pour votre sécurité, cette page expire après %(num)s minutes sans activité.",
                    deadline.lifetime_minutes)
