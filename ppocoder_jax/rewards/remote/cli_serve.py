"""`ppocoder sandbox-serve`: serve this host's sandboxed reward pool over HTTP.

Prints one line, `sandbox-serve: listening on http://HOST:PORT ...`, once it accepts requests,
then serves until SIGINT / SIGTERM. Trainers reach it with `reward.backend: remote` and
`reward.endpoints`. docs/reward-servers.md has the set-up.
"""

from __future__ import annotations

import asyncio
import os
import signal

from ppocoder_jax.errors import UserError
from ppocoder_jax.rewards.remote.server import TOKEN_ENV, check_bind

DEFAULT_PORT = 8642


def add_arguments(parser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"({DEFAULT_PORT}; 0: any)")
    parser.add_argument(
        "--token",
        default=None,
        help=f"shared token the clients send (default: ${TOKEN_ENV}); needed beyond loopback",
    )
    parser.add_argument("--workers", type=int, default=0, help="sandbox workers (0: cores)")
    parser.add_argument(
        "--max-queue",
        type=int,
        default=0,
        help="requests running + waiting before answering 503 busy (0: 4 x workers)",
    )
    parser.add_argument(
        "--max-request-mb", type=float, default=64.0, help="largest request body (64 MiB)"
    )
    parser.add_argument(
        "--languages",
        default="",
        help="comma-separated allow-list (default: every language whose toolchain is here)",
    )
    parser.add_argument("--timeout", type=float, default=4.0, help="seconds per test (4)")
    parser.add_argument(
        "--compile-timeout", type=float, default=30.0, help="seconds per compile (30)"
    )


def _languages(arg: str) -> frozenset[str]:
    from ppocoder_jax.rewards.execution.languages import (
        LANGUAGES,
        SPECS,
        canonical_language,
        missing_tools,
    )

    if not arg:
        return frozenset(lang for lang in LANGUAGES if not missing_tools(SPECS[lang]))
    chosen = set()
    for name in arg.split(","):
        try:
            lang = canonical_language(name.strip())
        except ValueError as err:
            raise UserError(f"--languages: {err}") from None
        if missing := missing_tools(SPECS[lang]):
            raise UserError(f"--languages: {lang} needs {', '.join(missing)}, not found here")
        chosen.add(lang)
    return frozenset(chosen)


def run(args) -> int:
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV, "")
    check_bind(args.host, token)
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be in 0..65535, got {args.port}")
    if args.workers < 0 or args.max_queue < 0:
        raise UserError("--workers and --max-queue must be >= 0")
    if not (args.timeout > 0 and args.compile_timeout > 0 and args.max_request_mb > 0):
        raise UserError("--timeout, --compile-timeout and --max-request-mb must be > 0")
    languages = _languages(args.languages)
    if not languages:
        raise UserError("--languages: no language has its toolchain on this host")
    from ppocoder_jax.rewards.execution import Executor

    with Executor(
        workers=args.workers, timeout_s=args.timeout, compile_timeout_s=args.compile_timeout
    ) as executor:
        max_queue = args.max_queue or 4 * executor.workers
        asyncio.run(_serve(args, executor, languages, max_queue, token))
    return 0


async def _serve(args, executor, languages, max_queue: int, token: str) -> None:
    from aiohttp import web

    from ppocoder_jax.rewards.remote.server import SandboxService, make_app

    service = SandboxService(executor, languages, max_queue, token)
    app = make_app(service, int(args.max_request_mb * (1 << 20)))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=10.0)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    try:
        await site.start()
    except OSError as err:
        await runner.cleanup()
        raise UserError(f"--host {args.host} --port {args.port}: cannot listen: {err}") from None
    host, port = runner.addresses[0][:2]
    where = f"[{host}]" if ":" in host else host
    print(
        f"sandbox-serve: listening on http://{where}:{port} (workers {executor.workers}, "
        f"max queue {max_queue}, languages {','.join(sorted(languages))}"
        f"{', token required' if token else ''})",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
