"""`ppocoder sandbox-serve`'s HTTP service: this host's sandboxed Executor behind aiohttp.

One request is one problem (a program and all its tests; wire.py), run as one executor job,
so a problem's tests cost one round trip. Requests beyond `max_queue` (running + waiting) are
answered 503 "busy" at once instead of queueing without bound: the client tries another
server. A bad request gets a 4xx with one line; an over-size body 413 before it is read.

The service executes untrusted code (through the same sandbox as local rewards), so it listens
on loopback unless given a shared token; with a token every /v1/run request must carry
`Authorization: Bearer <token>` (compared in constant time). /health needs no token and says
nothing secret: that the service is up, its languages and how full its queue is.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging

from aiohttp import web

from ppocoder_jax.errors import UserError
from ppocoder_jax.rewards.remote import wire

log = logging.getLogger(__name__)

TOKEN_ENV = "PPOCODER_SANDBOX_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_bind(host: str, token: str) -> None:
    """Listening beyond loopback without a token would run anyone's code: refuse."""
    if not is_loopback(host) and not token:
        raise UserError(
            f"--host {host}: listening beyond loopback needs a shared token "
            f"(--token or the {TOKEN_ENV} environment variable)"
        )


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": " ".join(message.split())[:300]}, status=status)


class SandboxService:
    def __init__(self, executor, languages: frozenset[str], max_queue: int, token: str = ""):
        self.executor, self.languages = executor, languages
        self.max_queue, self.token = max_queue, token
        self.pending = 0  # requests accepted and not yet answered (event loop only)
        self.served = 0
        self.busy = 0

    def _authorized(self, request: web.Request) -> bool:
        if not self.token:
            return True
        given = request.headers.get("Authorization", "")
        expected = f"Bearer {self.token}"
        return hmac.compare_digest(given.encode(), expected.encode())

    def _finished(self) -> None:
        self.pending -= 1

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok",
                "protocol": wire.PROTOCOL,
                "languages": sorted(self.languages),
                "pending": self.pending,
                "max_queue": self.max_queue,
                "served": self.served,
                # what verdicts depend on: a trainer warns when they differ from its own
                "timeout_s": self.executor.timeout_s,
                "compile_timeout_s": self.executor.compile_timeout_s,
            }
        )

    async def run(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, "missing or wrong token")
        if self.pending >= self.max_queue:
            self.busy += 1
            return _error(503, "busy")
        self.pending += 1
        try:
            body = await request.read()
            lang, program, tests, link = wire.parse_job(body, self.languages)
            future = self.executor.submit(lang, program, tests, link=link)
        except (wire.BadRequest, ValueError) as err:
            self.pending -= 1
            return _error(400, str(err))
        except BaseException:
            self.pending -= 1
            raise
        # The job holds its place in the queue until it ends, even when its client has gone
        # (a client's deadline must not let the queue grow); shielded, so that a client that
        # hangs up never cancels a job the executor's cache shares with later requests.
        loop = asyncio.get_running_loop()
        future.add_done_callback(lambda _f: loop.call_soon_threadsafe(self._finished))
        result = await asyncio.shield(asyncio.wrap_future(future))
        self.served += 1
        return web.json_response({"protocol": wire.PROTOCOL, "result": result.to_dict()})


def make_app(service: SandboxService, max_body_bytes: int) -> web.Application:
    app = web.Application(client_max_size=max_body_bytes, middlewares=[_one_line_errors])
    app.router.add_get(wire.HEALTH_PATH, service.health)
    app.router.add_post(wire.RUN_PATH, service.run)
    return app


@web.middleware
async def _one_line_errors(request: web.Request, handler):
    """aiohttp's own refusals (404, 405, 413) as one-line JSON like ours."""
    try:
        return await handler(request)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        return _error(err.status, err.text or err.reason)
