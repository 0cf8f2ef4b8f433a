"""The async driver: member browsers running whole code flows (aiohttp), for both providers.

Each virtual browser signs in again and again, from a clean cookie jar (plus
the cookies a returning member's browser keeps), behind its own client
address (X-Forwarded-For, so the per-address limits apply per browser), and
ends each flow with the relying party's token request.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
import psycopg
from yarl import URL

from bench.pages import (
    OUTBOX_CODE,
    FlowError,
    authorization_params,
    basic,
    csrf,
    emailed_code,
    interaction,
    known_not_trusted,
    query_value,
)
from bench.seed import CODE_VERIFIER, PASSWORD, REDIRECT_URI, Member


@dataclass
class Tally:
    flows: int = 0
    errors: int = 0
    flow_ms: list[float] = field(default_factory=list)
    request_ms: list[float] = field(default_factory=list)
    first_error: str | None = None


class Browser:
    """One member's browser: its cookie jar, its address, its keep-alive connection."""

    def __init__(self, base_url: str, connector: aiohttp.BaseConnector, tally: Tally):
        self.base = URL(base_url)
        self.jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
        self.http = aiohttp.ClientSession(connector=connector, connector_owner=False, cookie_jar=self.jar)
        self.tally = tally
        self.address = "127.0.0.1"

    def fresh(self, cookies: dict[str, str]) -> None:
        """A new sign-in: no session, only the long-lived cookies of a known browser."""
        self.jar.clear()
        if cookies:
            self.jar.update_cookies(cookies, self.base)
        self.address = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(1, 254)}"  # noqa: S311

    async def call(self, method: str, url: str, expect: int | tuple[int, ...], **kwargs) -> tuple[str, str]:
        """Send one request; returns (Location made absolute, body)."""
        headers = {"X-Forwarded-For": self.address, **kwargs.pop("headers", {})}
        started = time.perf_counter()
        async with self.http.request(method, self.base.join(URL(url)), headers=headers,
                                     allow_redirects=False, **kwargs) as response:
            body = await response.text()
            location = response.headers.get("Location", "")
        self.tally.request_ms.append((time.perf_counter() - started) * 1000)
        if response.status not in ((expect,) if isinstance(expect, int) else expect):
            raise FlowError(f"{method} {urlsplit(url).path}: {response.status} {body[:200]!r}")
        return str(self.base.join(URL(location))) if location else "", body

    async def close(self) -> None:
        await self.http.close()


async def redeem(browser: Browser, token_path: str, callback: str, authorization: str) -> None:
    """The relying party's part: the code for tokens."""
    data = {"grant_type": "authorization_code", "code": query_value(callback, "code"),
            "redirect_uri": REDIRECT_URI, "code_verifier": CODE_VERIFIER}
    await browser.call("POST", token_path, 200, data=data, headers={"Authorization": authorization})


@dataclass
class OurFlows:
    """Our provider: /authorize, which answers with the sign-in page, the password (then the
    code pages), whose answer sends the browser back to the client with the code, token."""

    client_id: str
    client_secret: str
    database_url: str  # the outbox, where the one-time codes are read
    tenant: str = "malakoff"

    async def run(self, browser: Browser, member: Member, kind: str, outbox) -> None:
        prefix = f"/{self.tenant}"
        cookies = member.cookies
        if kind == "flow+password+otp":
            cookies = known_not_trusted(cookies)
        browser.fresh(cookies)
        _, page = await browser.call("GET", f"{prefix}/authorize", 200,
                                     params=authorization_params(self.client_id, prompt="login"))
        form = {"interaction": interaction(page), "identifier": member.login,
                "password": PASSWORD, "csrf_token": csrf(page)}
        callback, _ = await browser.call("POST", f"{prefix}/login", 303, data=form)
        if kind == "flow+password+otp":
            callback = await self._second_factor(browser, member, callback, outbox)
        await redeem(browser, f"{prefix}/token", callback, basic(self.client_id, self.client_secret))

    async def _second_factor(self, browser: Browser, member: Member, choose: str, outbox) -> str:
        _, page = await browser.call("GET", choose, 200)
        form = {"channel": "email", "csrf_token": csrf(page)}
        verify, _ = await browser.call("POST", choose, 303, data=form)
        _, page = await browser.call("GET", verify, 200)
        async with outbox.cursor() as cursor:
            await cursor.execute(OUTBOX_CODE, (member.login,))
            row = await cursor.fetchone()
        form = {"code": emailed_code(row[0] if row else None), "csrf_token": csrf(page)}
        callback, _ = await browser.call("POST", verify, 303, data=form)
        return callback

    async def outbox(self):
        url = self.database_url.replace("postgresql+psycopg", "postgresql")
        return await psycopg.AsyncConnection.connect(url, autocommit=True)


@dataclass
class PeerFlows:
    """node-oidc-provider: /auth, its interaction (automatic, password, password then code), resume, token."""

    client_id: str
    client_secret: str

    async def run(self, browser: Browser, member: Member, kind: str, outbox) -> None:
        browser.fresh({})
        interaction, _ = await browser.call("GET", "/auth", 303, params=authorization_params(self.client_id))
        if kind == "flow":
            resume, _ = await browser.call("GET", f"{interaction}/auto", 303)
        else:
            await browser.call("GET", interaction, 200)
            form = {"login": member.login, "password": PASSWORD}
            if kind == "flow+password+otp":
                form["otp"] = "1"
            resume, _ = await browser.call("POST", f"{interaction}/login", 303, data=form)
            if kind == "flow+password+otp":
                await browser.call("GET", resume, 200)
                _, code = await browser.call("GET", "/bench/outbox", 200, params={"login": member.login})
                resume, _ = await browser.call("POST", resume, 303, data={"code": code})
        callback, _ = await browser.call("GET", resume, 303)
        await redeem(browser, "/token", callback, basic(self.client_id, self.client_secret))

    async def outbox(self):
        return None


async def drive(flows: OurFlows | PeerFlows, base_url: str, kind: str, members: list[Member], *,
                seconds: float, concurrency: int) -> tuple[Tally, float]:
    """``concurrency`` browsers start flows of ``kind`` for ``seconds``, and finish the flows they began.

    Returns the tally and the time from the start to the last flow's end (a slow flow
    is never left out for ending after the deadline).
    """
    tally = Tally()
    turn = itertools.cycle(members)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    deadline = time.perf_counter() + seconds

    async def browse() -> None:
        browser = Browser(base_url, connector, tally)
        outbox = await flows.outbox()
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    await flows.run(browser, next(turn), kind, outbox)
                except (TimeoutError, FlowError, aiohttp.ClientError) as exc:
                    tally.errors += 1
                    tally.first_error = tally.first_error or str(exc)
                    continue
                tally.flows += 1
                tally.flow_ms.append((time.perf_counter() - started) * 1000)
        finally:
            await browser.close()
            if outbox is not None:
                await outbox.close()

    started = time.perf_counter()
    await asyncio.gather(*(browse() for _ in range(concurrency)))
    await connector.close()
    return tally, time.perf_counter() - started


async def ceiling(url: str, *, seconds: float, concurrency: int) -> float:
    """Requests per second this driver sends to a server that does nothing."""
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=0)
    deadline = time.perf_counter() + seconds
    count = 0

    async def loop() -> None:
        nonlocal count
        browser = Browser(url, connector, tally)
        try:
            while time.perf_counter() < deadline:
                await browser.call("GET", "/", 200)
                count += 1
        finally:
            await browser.close()

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    await connector.close()
    return count / (time.perf_counter() - started)
