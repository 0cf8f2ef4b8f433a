"""What every page a browser test reaches must pass: axe-core, reflow at 360 px and 200 % zoom,
targets of at least 24 px.

axe-core comes from the npm registry at the version pinned in axe/package.json (lock file
committed), installed by ``npm ci`` into axe/node_modules (ignored by git) the first time it is
needed. It enters every page of a browser context as an init script, given through the DevTools
protocol, which the pages' Content-Security-Policy does not govern: the pages are checked with
their real CSP in force, no ``bypass_csp`` needed (and Chromium compiles it once per context,
not at every page).
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from pathlib import Path

from playwright.sync_api import BrowserContext, Page

from idp.pages import AXE_EXTRA_RULES, AXE_TAGS

AXE_DIR = Path(__file__).resolve().parent / "axe"
AXE_MODULE = AXE_DIR / "node_modules" / "axe-core"
#: A phone, and a 1280-px-wide window at 200 % zoom (the same CSS width).
REFLOW_WIDTHS = (360, 640)
MIN_TARGET_PX = 24

RUN_AXE = """async ([tags, extraRules]) => {
  const rules = Object.fromEntries(extraRules.map((rule) => [rule, {enabled: true}]));
  const result = await axe.run(document, {runOnly: {type: "tag", values: tags}, rules,
                                          resultTypes: ["violations"]});
  return result.violations.map((v) => `${v.id} (${v.impact}): ${v.help}\\n` +
    v.nodes.map((n) => `    ${n.target.join(" ")}: ${n.failureSummary.replace(/\\s+/g, " ")}`).join("\\n"));
}"""

# What sticks out past the right edge, to name it when a page scrolls sideways.
OVERFLOW = """() => {
  const width = window.innerWidth;
  const wide = [...document.querySelectorAll("body *")]
    .filter((e) => e.getBoundingClientRect().right > width + 0.5)
    .map((e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + " " +
                (typeof e.className === "string" ? e.className : ""));
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: width, wide: wide.slice(0, 5)};
}"""

SMALL_TARGETS = """(minimum) => [...document.querySelectorAll('input[type="checkbox"], input[type="radio"]')]
  .filter((e) => e.offsetParent !== null)
  .map((e) => ({id: e.id, box: e.getBoundingClientRect()}))
  .filter((t) => t.box.width < minimum || t.box.height < minimum)
  .map((t) => `#${t.id}: ${t.box.width}x${t.box.height}`)"""


class AxeUnavailable(Exception):
    """npm or the registry could not provide axe-core."""


def pinned_axe_version() -> str:
    return json.loads((AXE_DIR / "package.json").read_text(encoding="utf-8"))["dependencies"]["axe-core"]


def _installed_axe_version() -> str | None:
    try:
        return json.loads((AXE_MODULE / "package.json").read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError):
        return None


def axe_source() -> str:
    """axe.min.js at the pinned version, installed with ``npm ci`` when missing or outdated.

    The suite's processes (pytest-xdist) may all need it at once: they take turns, each holding
    a lock on axe/package.json, so that one installs it and the others find it installed.
    """
    with (AXE_DIR / "package.json").open("rb") as pinned:
        fcntl.flock(pinned, fcntl.LOCK_EX)
        _install_axe()
    return (AXE_MODULE / "axe.min.js").read_text(encoding="utf-8")


def _install_axe() -> None:
    if _installed_axe_version() != pinned_axe_version():
        npm = shutil.which("npm")
        if npm is None:
            raise AxeUnavailable("npm is not installed (apt-get install npm)")
        try:
            done = subprocess.run(  # noqa: S603 - fixed arguments, npm found on PATH
                [npm, "ci", "--prefix", str(AXE_DIR), "--no-audit", "--no-fund", "--loglevel=error"],
                capture_output=True, text=True, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            raise AxeUnavailable("npm ci did not finish in 5 minutes") from None
        if done.returncode != 0 or _installed_axe_version() != pinned_axe_version():
            raise AxeUnavailable(f"npm ci failed in {AXE_DIR}: {done.stderr.strip()[-800:]}")


class AccessibilityCheck:
    """``check(page, name)``: the page as it is now passes axe, reflows and has large enough targets."""

    def __init__(self, source: str):
        self.source = source

    def attach(self, context: BrowserContext) -> None:
        """Give axe-core to every page this context opens."""
        context.add_init_script(self.source)

    def __call__(self, page: Page, name: str) -> None:
        # The page as the member sees it: its stylesheets applied. Its heading can be there
        # before they are (a busy machine showed a button 21 px high, unstyled, for its 44).
        page.wait_for_load_state("load")
        assert page.evaluate("() => typeof window.axe === 'object'"), "axe-core is not in this page (attach)"
        violations = page.evaluate(RUN_AXE, [list(AXE_TAGS), list(AXE_EXTRA_RULES)])
        assert not violations, f"{name} ({page.url}): axe-core found\n" + "\n".join(violations)
        small = page.evaluate(SMALL_TARGETS, MIN_TARGET_PX)
        assert not small, f"{name}: checkboxes or radio buttons under {MIN_TARGET_PX} px: {small}"
        self.reflows(page, name)

    @staticmethod
    def reflows(page: Page, name: str) -> None:
        """No horizontal scrolling at 360 px, nor at 200 % zoom of a 1280-px window."""
        original = page.viewport_size
        try:
            for width in REFLOW_WIDTHS:
                page.set_viewport_size({"width": width, "height": 800})
                layout = page.evaluate(OVERFLOW)
                assert layout["scrollWidth"] <= layout["innerWidth"], (
                    f"{name} scrolls sideways at {width} px: {layout}")
        finally:
            page.set_viewport_size(original)
