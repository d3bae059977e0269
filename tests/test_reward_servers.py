"""Rewards across machines: `ppocoder sandbox-serve` and reward.backend=remote on loopback.

The client and a real server (a subprocess, killed and restarted like a remote machine) agree
with the local executor verdict for verdict, failure detail included; a server killed
mid-batch, a hung one, a dead endpoint and a restart cost no verdict and leave the counts
right; answers that are not verdicts are masked, never scored; the service's guards (token,
loopback, size limit, allow-list, busy) answer one line; hostile programs stay contained.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web
from helpers.reward_servers import ServeProcess, StubServer, free_port
from test_execution_check_servers import ECHO as CHECK_ECHO
from test_execution_check_servers import LINKED
from test_execution_check_servers import PROGRAMS as CHECK_PROGRAMS
from test_execution_feedback import JOBS as FEEDBACK_JOBS
from test_execution_hostile import HOSTILE
from test_execution_languages import ADD, PROGRAMS

from ppocoder_jax.cli import main
from ppocoder_jax.config import RewardConfig
from ppocoder_jax.data import Example
from ppocoder_jax.errors import UserError
from ppocoder_jax.rewards.composite import CompositeReward
from ppocoder_jax.rewards.execution import Executor, Verdict
from ppocoder_jax.rewards.execution.languages import SPECS, missing_tools
from ppocoder_jax.rewards.remote import wire
from ppocoder_jax.rewards.remote.client import RemoteExecutor
from ppocoder_jax.rewards.remote.server import check_bind
from ppocoder_jax.rollout.reward_columns import _check_masked

ECHO = {"inputs": ["5\n"], "outputs": ["5\n"]}


def _echo(i: int, sleep_s: float = 0.0) -> tuple:
    """A distinct passing job (the server's cache would share identical ones)."""
    nap = f"import time\ntime.sleep({sleep_s})\n" if sleep_s else ""
    return ("python", f"{nap}print(input())  # {i}\n", ECHO)


# gcc's assembler names its temporary file at random (ccAbC123.s): two local runs differ there
_GCC_TEMP = re.compile(r"cc[A-Za-z0-9]{6}\.s\b")


def _comparable(result) -> dict:
    d = result.to_dict()
    del d["duration_s"]
    return json.loads(_GCC_TEMP.sub("ccTEMP.s", json.dumps(d)))


@pytest.fixture(scope="module")
def server():
    with ServeProcess("--workers", "2", "--timeout", "4") as srv:
        yield srv


@pytest.fixture(scope="module")
def local():
    with Executor(workers=2, timeout_s=4.0) as ex:
        yield ex


def _client(*urls, **kw) -> RemoteExecutor:
    kw.setdefault("backoff_s", 0.1)
    return RemoteExecutor(list(urls), **kw)


# --- agreement ------------------------------------------------------------------------------
@pytest.mark.toolchain
def test_remote_agrees_with_local_on_the_language_corpus(server, local):
    jobs = []
    for lang, (good, wrong, crash, syntax, snippet) in sorted(PROGRAMS.items()):
        if missing_tools(SPECS[lang]):
            continue
        jobs += [(lang, snippet), (lang, syntax), (lang, good, ADD), (lang, wrong, ADD)]
        jobs += [(lang, crash, ADD), (lang, syntax, ADD), (lang, good, None, True)]
    assert len(jobs) >= 7
    with _client(server.url, concurrency=4) as remote:
        theirs = remote.run_many(jobs)
        assert remote.stats["infra_errors"] == 0 and remote.stats["remote_retries"] == 0
    ours = local.run_many(jobs)
    for job, a, b in zip(jobs, ours, theirs):
        assert _comparable(a) == _comparable(b), job


@pytest.mark.toolchain
def test_remote_agrees_with_local_on_the_check_server_corpus(server, local):
    """JavaScript, PHP, C# and C compile checks (the check servers' corpus: deep nesting,
    redeclarations, odd encodings...), link checks and a full program with tests."""
    jobs = []
    for lang, programs in sorted(CHECK_PROGRAMS.items()):
        if missing_tools(SPECS[lang]):
            continue
        full, snippet = LINKED[lang]
        jobs += [(lang, program) for program in programs.values()]
        jobs += [(lang, full, None, True), (lang, snippet, None, True), (lang, full, CHECK_ECHO)]
    if not jobs:
        pytest.skip("no check-server toolchain here")
    with _client(server.url, concurrency=4) as remote:
        theirs = remote.run_many(jobs)
        assert remote.stats["infra_errors"] == 0
    ours = local.run_many(jobs)
    for job, a, b in zip(jobs, ours, theirs):
        assert _comparable(a) == _comparable(b), job[:2]


def test_remote_agrees_with_local_on_failure_details(server, local):
    """The per-test detail (TestFailure) that multi-turn feedback shows comes back whole."""
    jobs = [job for job, _expect, _detail in FEEDBACK_JOBS.values()]
    jobs = [j for j in jobs if not missing_tools(SPECS[j[0]])]
    with _client(server.url, concurrency=4) as remote:
        theirs = remote.run_many(jobs)
    ours = local.run_many(jobs)
    assert any(r.failure is not None for r in theirs)
    for job, a, b in zip(jobs, ours, theirs):
        assert _comparable(a) == _comparable(b), job


@pytest.mark.parametrize(
    "name",
    ["infinite_loop", "fork_bomb", "memory_hog", "kill_parent_and_everything", "fake_infra_error"],
)
def test_hostile_programs_stay_contained_through_the_service(server, local, name):
    job, expected = HOSTILE[name]
    with _client(server.url) as remote:
        result = remote.submit(*job).result()
        assert result.verdict in expected, (result.verdict, result.detail)
        assert result.verdict == local.submit(*job).result().verdict
        # the server lives on and serves the next job
        assert remote.submit(*_echo(0)).result().verdict is Verdict.PASS
        assert remote.stats["remote_retries"] == 0
    assert server.proc.poll() is None


# --- faults -----------------------------------------------------------------------------------
def test_a_server_killed_mid_batch_costs_no_verdict():
    with ServeProcess("--workers", "1") as a, ServeProcess("--workers", "1") as b:
        with _client(a.url, b.url, concurrency=2, request_timeout_s=60, retries=3) as remote:
            futures = [remote.submit(*_echo(i, 0.3)) for i in range(12)]
            while sum(f.done() for f in futures) < 2:
                time.sleep(0.05)
            a.kill()  # with requests in flight on it
            results = [f.result(timeout=300) for f in futures]
            assert [r.verdict for r in results] == [Verdict.PASS] * 12
            assert remote.stats["infra_errors"] == 0 and remote.stats["submitted"] == 12
            assert remote.stats["remote_retries"] >= 1


async def _hang(request):
    await asyncio.sleep(3600)


def test_a_hung_server_is_left_at_the_deadline(server):
    with StubServer([("POST", wire.RUN_PATH, _hang)]) as hung:
        with _client(hung.url, server.url, request_timeout_s=2, retries=2) as remote:
            results = remote.run_many([_echo(i) for i in range(4)])
            assert [r.verdict for r in results] == [Verdict.PASS] * 4
            assert remote.stats["infra_errors"] == 0
        with _client(hung.url, request_timeout_s=1, retries=1) as remote:
            t = time.monotonic()
            results = remote.run_many([_echo(i) for i in range(3)])
            assert time.monotonic() - t < 30
            assert [r.verdict for r in results] == [Verdict.INFRA_ERROR] * 3
            assert all(r.reward is None and "no answer in time" in r.detail for r in results)
            assert remote.stats["remote_no_verdict"] == 3 == remote.stats["infra_errors"]


def test_one_of_two_endpoints_down(server):
    dead = f"http://127.0.0.1:{free_port()}"
    with _client(dead, server.url, retries=2) as remote:
        results = remote.run_many([_echo(i) for i in range(10)])
        assert [r.verdict for r in results] == [Verdict.PASS] * 10
        assert remote.stats["infra_errors"] == 0
        # the dead endpoint is avoided after it failed, not tried by every job
        assert 1 <= remote.stats["remote_retries"] < 10


def test_a_server_restarted_while_the_trainer_runs():
    port = free_port()
    srv = ServeProcess("--workers", "1", port=port).start()
    try:
        with _client(srv.url, retries=12, request_timeout_s=30, backoff_s=0.5) as remote:
            futures = []

            def trainer():  # keeps submitting across the restart
                for i in range(16):
                    futures.append(remote.submit(*_echo(i)))
                    time.sleep(0.25)

            thread = threading.Thread(target=trainer)
            thread.start()
            time.sleep(1.0)
            srv.kill()
            time.sleep(1.0)
            srv = ServeProcess("--workers", "1", port=port).start()
            thread.join()
            results = [f.result(timeout=300) for f in futures]
            assert len(results) == 16 == remote.stats["submitted"]
            assert [r.verdict for r in results] == [Verdict.PASS] * 16
            assert remote.stats["infra_errors"] == 0 and remote.stats["remote_retries"] >= 1
    finally:
        srv.stop()


def _answer(payload, status=200):
    async def handler(request):
        await request.read()
        if isinstance(payload, bytes):
            return web.Response(body=payload, status=status)
        return web.json_response(payload, status=status)

    return handler


PASS_RESULT = {"verdict": "PASS", "reward": 1.0, "compiled": True, "tests_passed": 1}
NOT_VERDICTS = {
    "not_json": _answer(b"<html>oops</html>"),
    "server_error": _answer({"error": "internal"}, status=500),
    "unknown_verdict": _answer(
        {"protocol": 1, "result": {**PASS_RESULT, "verdict": "GREAT", "tests_total": 1}}
    ),
    "other_job": _answer({"protocol": 1, "result": {**PASS_RESULT, "tests_total": 7}}),
    "passed_beyond_total": _answer(
        {"protocol": 1, "result": {**PASS_RESULT, "tests_passed": 2, "tests_total": 1}}
    ),
    "bad_failure": _answer(
        {
            "protocol": 1,
            "result": {**PASS_RESULT, "tests_total": 1, "failure": {"index": 0, "kind": "x"}},
        }
    ),
    "its_infra_error": _answer(
        {
            "protocol": 1,
            "result": {
                "verdict": "INFRA_ERROR",
                "compiled": False,
                "tests_passed": 0,
                "tests_total": 0,
                "detail": "sandbox broke",
            },
        }
    ),
}


@pytest.mark.parametrize("name", sorted(NOT_VERDICTS))
def test_answers_that_are_not_verdicts_are_masked_never_scored(name):
    with StubServer([("POST", wire.RUN_PATH, NOT_VERDICTS[name])]) as stub:
        with _client(stub.url, retries=1) as remote:
            cfg = RewardConfig(compile_weight=1.0, tests_weight=1.0, ast_weight=0.0, dfg_weight=0.0)
            example = Example(
                id="e0", prompt="p", target="y", lang="python", tests=ECHO, context_prefix=""
            )
            with CompositeReward(cfg, executor=remote) as reward:
                (parts,) = reward.score([example], ["print(input())\n"])
            assert parts.infra_error and parts.masked and parts.total == 0.0
            assert parts.columns()["masked_infra"] == 1.0 and parts.columns()["valid"] == 0.0
            assert remote.stats["remote_no_verdict"] == 1 and remote.stats["remote_retries"] == 1


def test_max_error_frac_caps_samples_without_a_remote_verdict():
    remote = SimpleNamespace(
        reward=RewardConfig(backend="remote", endpoints=("http://h:1",), max_error_frac=0.25)
    )
    counts = {"masked_infra": 3, "masked_plugin": 0, "masked_nonfinite": 0}
    with pytest.raises(UserError, match="no verdict from the reward servers"):
        _check_masked(remote, counts, {}, 8, 1)
    _check_masked(remote, {**counts, "masked_infra": 2}, {}, 8, 1)  # 2 of 8: within the cap
    local = SimpleNamespace(reward=RewardConfig(max_error_frac=0.25))
    _check_masked(local, counts, {}, 8, 1)  # local INFRA_ERRORs: masked and counted, as before


# --- the service's guards -------------------------------------------------------------------
def test_listening_beyond_loopback_needs_a_token(monkeypatch, capsys):
    check_bind("127.0.0.1", "")
    check_bind("::1", "")
    check_bind("0.0.0.0", "s3cret")
    for host in ("0.0.0.0", "10.1.2.3", "example.org"):
        with pytest.raises(UserError, match="needs a shared token"):
            check_bind(host, "")
    monkeypatch.delenv("PPOCODER_SANDBOX_TOKEN", raising=False)
    assert main(["sandbox-serve", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs a shared token" in err and "\n" not in err


async def _post(url: str, body: bytes, token: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as s:
        async with s.post(url + wire.RUN_PATH, data=body, headers=headers) as r:
            return r.status, await r.text()


def test_guards_answer_one_line():
    token = "tok-123"
    args = ("--workers", "1", "--max-queue", "1", "--max-request-mb", "0.05")
    args += ("--languages", "python", "--timeout", "4")
    with ServeProcess(*args, env={"PPOCODER_SANDBOX_TOKEN": token}) as srv:

        async def scenario():
            async with aiohttp.ClientSession() as s:
                async with s.get(srv.url + wire.HEALTH_PATH) as r:
                    health = await r.json()
            good = wire.job_body("python", "print(input())\n", ECHO, False)
            slow = wire.job_body("python", "import time\ntime.sleep(3)\n", ECHO, False)
            checks = {
                "no_token": await _post(srv.url, good),
                "wrong_token": await _post(srv.url, good, "tok-124"),
                "ok": await _post(srv.url, good, token),
                "not_json": await _post(srv.url, b"{", token),
                "not_allowed": await _post(
                    srv.url, wire.job_body("php", "<?php\n", None, False), token
                ),
                "unknown_lang": await _post(
                    srv.url, wire.job_body("cobol", "x", None, False), token
                ),
                "bad_tests": await _post(
                    srv.url, wire.job_body("python", "x", {"inputs": [1]}, False), token
                ),
                "too_big": await _post(
                    srv.url, wire.job_body("python", "#" * 100_000, None, False), token
                ),
            }
            # the queue holds one request: the second, sent meanwhile, is told busy
            first = asyncio.create_task(_post(srv.url, slow, token))
            await asyncio.sleep(0.5)
            checks["busy"] = await _post(srv.url, good, token)
            checks["slow"] = await first
            return health, checks

        health, checks = asyncio.run(scenario())
    assert health["status"] == "ok" and health["languages"] == ["python"]
    assert health["max_queue"] == 1 and "token" not in json.dumps(health)
    expected = {
        "no_token": 401,
        "wrong_token": 401,
        "ok": 200,
        "not_json": 400,
        "not_allowed": 400,
        "unknown_lang": 400,
        "bad_tests": 400,
        "too_big": 413,
        "busy": 503,
        "slow": 200,
    }
    assert {k: v[0] for k, v in checks.items()} == expected
    for name, (status, text) in checks.items():
        if status != 200:
            error = json.loads(text)["error"]
            assert error and "\n" not in error, name
    assert json.loads(checks["busy"][1])["error"] == "busy"
    assert "not served here" in checks["not_allowed"][1]
    assert json.loads(checks["ok"][1])["result"]["verdict"] == "PASS"


def test_remote_config_is_checked_at_start_up():
    with pytest.raises(UserError, match="reward.endpoints"):
        RewardConfig(backend="remote")
    with pytest.raises(UserError, match="reward.endpoints"):
        RewardConfig(backend="sandbox_fusion", endpoints=("10.0.0.1:8080",))
    with pytest.raises(UserError, match="reward.retries"):
        RewardConfig(backend="remote", endpoints=("http://10.0.0.1:8642",), retries=-1)
    RewardConfig(backend="remote", endpoints=("http://10.0.0.1:8642", "https://h/sf"))


# --- load -------------------------------------------------------------------------------------
def test_load_on_loopback_is_bounded(server):
    """150 distinct problems of 2 tests through one 2-worker server: every verdict right,
    within a time bound; the rate is printed (docs/measurements has the measured one)."""
    n = 150
    tests = {"inputs": ["1\n", "2\n"], "outputs": ["1\n", "2\n"]}
    jobs = [("python", f"print(input())  # {i}\n", tests) for i in range(n)]
    with _client(server.url, concurrency=8) as remote:
        t = time.monotonic()
        results = remote.run_many(jobs)
        elapsed = time.monotonic() - t
        assert [r.verdict for r in results] == [Verdict.PASS] * n
        assert remote.stats["infra_errors"] == 0 and remote.stats["remote_requests"] == n
    assert elapsed < 180
    print(f"load: {n} problems in {elapsed:.1f}s = {n / elapsed:.1f} problems/s")


def test_start_up_probe(server):
    """reward.backend=remote asks every server's /health at start-up: one whose per-test time
    limit differs from reward.timeout_s is named (its TIMEOUT verdicts would differ), and a run
    whose servers all fail to answer stops at once with one line."""
    from ppocoder_jax.rewards.backends import make_executor

    dead = f"http://127.0.0.1:{free_port()}"
    cfg = RewardConfig(backend="remote", endpoints=(server.url, dead), timeout_s=4.0)
    with make_executor(cfg) as remote:
        assert isinstance(remote, RemoteExecutor)
        problems = remote.probe(4.0)
        assert len(problems) == 1 and problems[0].startswith(dead)
        (mismatch, _dead) = remote.probe(2.0)
        assert "--timeout 4.0" in mismatch and "reward.timeout_s is 2" in mismatch
    with pytest.raises(UserError, match="none of the 1 reward servers answers"):
        make_executor(RewardConfig(backend="remote", endpoints=(dead,)))


def test_a_client_that_gives_up_costs_the_server_nothing(server):
    """A request past the client's deadline is dropped by the client; on the server its job
    runs to the end and keeps its place in the queue meanwhile, and the same job asked again
    gets its verdict (the job was not cancelled under the executor's cache)."""
    job = _echo(777, 2.0)
    with _client(server.url, request_timeout_s=0.5, retries=0) as impatient:
        assert impatient.submit(*job).result().verdict is Verdict.INFRA_ERROR

    async def pending() -> int:
        async with aiohttp.ClientSession() as s:
            async with s.get(server.url + wire.HEALTH_PATH) as r:
                return (await r.json())["pending"]

    assert asyncio.run(pending()) == 1  # still running there
    with _client(server.url) as patient:
        assert patient.submit(*job).result().verdict is Verdict.PASS
    deadline = time.monotonic() + 30
    while asyncio.run(pending()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert asyncio.run(pending()) == 0
