"""The trainer's side of remote rewards: an Executor look-alike whose jobs run on servers.

`RemoteExecutor.submit(lang, program, tests, link)` returns a Future[ExecutionResult] like the
local Executor, so the reward, the collector and feedback use it unchanged. A job is turned
into HTTP requests by a dialect (SandboxServeDialect: one request per problem, for
`ppocoder sandbox-serve`; sandbox_fusion.SandboxFusionDialect: SandboxFusion's /run_code).

Every request goes through `EndpointPool.call`: to the least busy endpoint (requests in flight
per endpoint are bounded by a semaphore), with a deadline; a failure (connection refused or
reset, the deadline, a non-200 answer, an answer that is not a real verdict) is retried on
another endpoint after a backoff, and the failed endpoint is avoided for a while. "Busy" (503)
is not a failure: the request waits and goes elsewhere, within a bound. A job whose verdict
could not be had after `retries` more tries is an INFRA_ERROR: masked by the learner, counted
(`stats["remote_no_verdict"]`, `stats["infra_errors"]`), capped by reward.max_error_frac;
never a score. The event loop runs on one daemon thread; the trainer never forks.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import TypeVar

import aiohttp

from ppocoder_jax.rewards.execution import harness
from ppocoder_jax.rewards.execution.languages import canonical_language
from ppocoder_jax.rewards.execution.verdicts import ExecutionResult, Verdict, make_result
from ppocoder_jax.rewards.remote import wire

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_BACKOFF_S = 5.0
MAX_AVOID_S = 30.0


class Busy(Exception):
    """The endpoint is full (503 busy): try elsewhere, not a failure."""


class Retry(Exception):
    """This answer is not a verdict (server error, bad answer): retry on another endpoint.
    `down`: also avoid the endpoint for a while (it looks broken, not merely unhappy)."""

    def __init__(self, message: str, down: bool = True):
        super().__init__(message)
        self.down = down


class NoVerdict(Exception):
    """No endpoint gave a verdict within the retries."""


class Endpoint:
    def __init__(self, url: str, concurrency: int):
        self.url = url.rstrip("/")
        self.concurrency = concurrency
        self.sem = asyncio.Semaphore(concurrency)
        self.assigned = 0  # requests holding or waiting for the semaphore
        self.failures = 0  # in a row
        self.avoid_until = 0.0

    def failed(self) -> None:
        self.failures += 1
        self.avoid_until = time.monotonic() + min(MAX_AVOID_S, 0.5 * 2 ** (self.failures - 1))

    def answered(self) -> None:
        self.failures, self.avoid_until = 0, 0.0


class EndpointPool:
    """Endpoints with retries and backoff; lives on the client's event loop."""

    def __init__(
        self,
        urls,
        concurrency: int,
        request_timeout_s: float,
        retries: int,
        token: str,
        stats: Counter,
        backoff_s: float = 0.5,
    ):
        self.endpoints = [Endpoint(u, concurrency) for u in urls]
        self.request_timeout_s, self.retries = request_timeout_s, retries
        self.backoff_s, self.stats = backoff_s, stats
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.session: aiohttp.ClientSession | None = None
        self._turn = 0

    def _pick(self, tried: set[Endpoint]) -> Endpoint:
        """The least busy endpoint, preferring ones not tried for this request and not
        avoided after a failure; round robin among equals."""
        now = time.monotonic()
        for pool in (
            [e for e in self.endpoints if e not in tried and e.avoid_until <= now],
            [e for e in self.endpoints if e.avoid_until <= now],
            [e for e in self.endpoints if e not in tried],
            self.endpoints,
        ):
            if pool:
                break
        self._turn += 1
        n = len(pool)
        order = [pool[(self._turn + i) % n] for i in range(n)]
        return min(order, key=lambda e: (e.assigned / e.concurrency, e.avoid_until))

    async def call(self, path: str, body: bytes, parse: Callable[[int, bytes], T]) -> tuple[T, str]:
        """(parse(status, body) of the first endpoint that answers, its URL); NoVerdict after
        1 + retries failures. parse raises Busy or Retry for an answer that is no verdict."""
        assert self.session is not None
        tried: set[Endpoint] = set()
        failures, last = 0, "no endpoint tried"
        busy_until = time.monotonic() + self.request_timeout_s * (self.retries + 1)
        while True:
            endpoint = self._pick(tried)
            endpoint.assigned += 1
            try:
                async with endpoint.sem:
                    self.stats["remote_requests"] += 1
                    async with self.session.post(
                        endpoint.url + path,
                        data=body,
                        headers={**self.headers, "Content-Type": "application/json"},
                        timeout=aiohttp.ClientTimeout(total=self.request_timeout_s),
                    ) as response:
                        data = await response.read()
                        value = parse(response.status, data)
                endpoint.answered()
                return value, endpoint.url
            except Busy:
                self.stats["remote_busy"] += 1
                tried.add(endpoint)
                if time.monotonic() > busy_until:
                    raise NoVerdict(f"{endpoint.url}: busy for too long") from None
                await asyncio.sleep(self.backoff_s * (0.5 + len(tried) / len(self.endpoints)))
                if len(tried) >= len(self.endpoints):
                    tried.clear()
                continue
            except (TimeoutError, aiohttp.ClientError, Retry) as err:
                what = "no answer in time" if isinstance(err, TimeoutError) else err
                last = f"{endpoint.url}: {type(err).__name__}: {what}"
                if not isinstance(err, Retry) or err.down:
                    endpoint.failed()
            finally:
                endpoint.assigned -= 1
            failures += 1
            tried.add(endpoint)
            if failures > self.retries:
                raise NoVerdict(f"no verdict after {failures} tries; last: {last}")
            self.stats["remote_retries"] += 1
            log.warning("reward request failed (%s); retrying on another endpoint", last)
            await asyncio.sleep(min(MAX_BACKOFF_S, self.backoff_s * 2 ** (failures - 1)))


class SandboxServeDialect:
    """`ppocoder sandbox-serve`: one request per problem, the ExecutionResult back."""

    async def run(self, pool: EndpointPool, lang, program, tests, link) -> ExecutionResult:
        total = wire.tests_total(lang, tests)

        def parse(status: int, data: bytes) -> ExecutionResult:
            if status == 503:
                raise Busy()
            if status != 200:
                text = data[:200].decode("utf-8", errors="replace")
                raise Retry(f"HTTP {status}: {' '.join(text.split())}", down=status >= 500)
            try:
                result = wire.parse_result(wire.json.loads(data), total)
            except (ValueError, UnicodeDecodeError) as err:
                raise Retry(f"not a verdict: {err}") from None
            if result.verdict is Verdict.INFRA_ERROR:  # that server's own failure
                raise Retry(f"the server's INFRA_ERROR: {result.detail[:200]}", down=False)
            return result

        result, _url = await pool.call(
            wire.RUN_PATH, wire.job_body(lang, program, tests, link), parse
        )
        return result


class RemoteExecutor:
    """Executor.submit / busy_seconds / stats / close over remote endpoints (module doc)."""

    def __init__(
        self,
        endpoints,
        *,
        dialect=None,
        token: str = "",
        concurrency: int = 8,
        request_timeout_s: float = 120.0,
        retries: int = 3,
        backoff_s: float = 0.5,
    ):
        if not endpoints:
            raise ValueError("at least one endpoint")
        self.dialect = dialect or SandboxServeDialect()
        self.workers = concurrency * len(endpoints)
        self.stats: Counter = Counter()
        self._lock = threading.Lock()
        self._busy_done = 0.0
        self._running: dict[int, float] = {}
        self._ids = 0
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="ppocoder-remote-rewards", daemon=True
        )
        self._thread.start()
        self.pool: EndpointPool = self._on_loop(
            self._make_pool(endpoints, concurrency, request_timeout_s, retries, token, backoff_s)
        )

    async def _make_pool(self, *args) -> EndpointPool:
        pool = EndpointPool(*args[:5], self.stats, backoff_s=args[5])
        # No connection cap beyond the endpoints' semaphores; no cookies between trainers.
        pool.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar()
        )
        return pool

    def _on_loop(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def endpoints(self) -> list[str]:
        return [e.url for e in self.pool.endpoints]

    def submit(
        self, lang: str, program: str, tests: dict | None = None, link: bool = False
    ) -> Future:
        """Queue one job; raises ValueError for an unknown language or malformed tests (as
        the local Executor does)."""
        lang = canonical_language(lang)
        harness.parse_tests(tests, lang)
        if not isinstance(program, str):
            raise ValueError("program must be a string")
        with self._lock:
            if self._closed:
                raise RuntimeError("Executor is closed")
            self.stats["submitted"] += 1
        return asyncio.run_coroutine_threadsafe(
            self._job(lang, program, tests, bool(link)), self._loop
        )

    def run_many(self, jobs) -> list[ExecutionResult]:
        futures = [self.submit(**j) if isinstance(j, dict) else self.submit(*j) for j in jobs]
        return [f.result() for f in futures]

    async def _job(self, lang, program, tests, link) -> ExecutionResult:
        with self._lock:
            self._ids += 1
            job_id = self._ids
            self._running[job_id] = start = time.monotonic()
        try:
            result = await self.dialect.run(self.pool, lang, program, tests, link)
        except NoVerdict as err:
            result = self._no_verdict(lang, tests, str(err), "remote_no_verdict")
        except Exception as err:  # our own failure: never scored as a bad program
            log.exception("remote reward job failed")
            result = self._no_verdict(lang, tests, f"{type(err).__name__}: {err}", "remote_bugs")
        finally:
            with self._lock:
                self._busy_done += time.monotonic() - self._running.pop(job_id)
        if result.verdict is Verdict.INFRA_ERROR:
            with self._lock:
                self.stats["infra_errors"] += 1
        return replace(result, duration_s=time.monotonic() - start)

    def _no_verdict(self, lang, tests, detail: str, counter: str) -> ExecutionResult:
        with self._lock:
            self.stats[counter] += 1
        return make_result(
            Verdict.INFRA_ERROR,
            compiled=False,
            tests_total=wire.tests_total(lang, tests),
            detail=detail,
        )

    def busy_seconds(self) -> float:
        """Seconds jobs have been waiting on the servers, running ones up to now (the busy
        fraction over a window: a difference of readings / (workers x the window))."""
        with self._lock:
            now = time.monotonic()
            return self._busy_done + sum(now - s for s in self._running.values())

    def probe(self, timeout_s: float, wait_s: float = 10.0) -> list[str]:
        """Ask every endpoint's /health now; say what would make its verdicts differ from
        this trainer's (another per-test time limit) or what keeps it from answering. Raises
        UserError when none answers: a run would only mask every sample."""
        from ppocoder_jax.errors import UserError

        async def one(endpoint: Endpoint) -> str:
            try:
                async with self.pool.session.get(
                    endpoint.url + wire.HEALTH_PATH,
                    timeout=aiohttp.ClientTimeout(total=wait_s),
                ) as response:
                    health = await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, ValueError) as err:
                return f"{endpoint.url}: no /health answer ({type(err).__name__}: {err})"
            if not isinstance(health, dict) or health.get("status") != "ok":
                return f"{endpoint.url}: /health answered {str(health)[:100]}"
            if health.get("timeout_s") != timeout_s:
                return (
                    f"{endpoint.url}: serves with --timeout {health.get('timeout_s')}, this "
                    f"trainer's reward.timeout_s is {timeout_s:g} (TIMEOUT verdicts differ)"
                )
            return ""

        async def every() -> list[str]:
            return list(await asyncio.gather(*(one(e) for e in self.pool.endpoints)))

        problems = [p for p in self._on_loop(every()) if p]
        for problem in problems:
            log.warning("reward server: %s", problem)
        down = [p for p in problems if "no /health answer" in p]
        if len(down) == len(self.pool.endpoints):
            raise UserError(
                f"reward.endpoints: none of the {len(down)} reward servers answers; {down[0]}"
            )
        return problems

    def cache_len(self) -> int:
        return 0  # no result cache on this side: the servers run every job

    def warm_up(self, langs) -> None:
        """Nothing to warm here (the servers warm themselves)."""

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        session = self.pool.session
        if session is not None:
            self._on_loop(session.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> RemoteExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
