"""reward.backend=sandbox_fusion against a stub that answers /run_code as SandboxFusion
documents it (RunCodeRequest / RunCodeResponse: Success | Failed | SandboxError, compile and
run CommandRunResults with Finished | Error | TimeLimitExceeded). Real verdicts map to ours;
SandboxError, an "Error" command, a Failed without a result that explains it, garbage and
the deadline are retried elsewhere, then masked and counted, never scored."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from helpers.reward_servers import StubServer

from ppocoder_jax.config import RewardConfig
from ppocoder_jax.data import Example
from ppocoder_jax.rewards.backends import make_executor
from ppocoder_jax.rewards.composite import CompositeReward
from ppocoder_jax.rewards.execution import Verdict
from ppocoder_jax.rewards.remote.client import RemoteExecutor
from ppocoder_jax.rewards.remote.sandbox_fusion import RUN_CODE_PATH, SandboxFusionDialect

ADD = {"inputs": ["1 2\n", "30 12\n"], "outputs": ["3\n", "42\n"]}


def _run(status="Finished", rc=0, stdout="", stderr=""):
    return {
        "status": status,
        "execution_time": 0.01,
        "return_code": rc,
        "stdout": stdout,
        "stderr": stderr,
    }


def _sum(stdin: str) -> str:
    return f"{sum(int(x) for x in stdin.split())}\n"


class FakeSandboxFusion:
    """Answers by a marker in the code; keeps every request it got."""

    def __init__(self):
        self.requests: list[dict] = []
        self.flaky_left = 1

    async def run_code(self, request: web.Request) -> web.Response:
        req = await request.json()
        self.requests.append(req)
        code, stdin = req["code"], req.get("stdin") or ""
        compiled = _run() if req["language"] in ("cpp", "java", "csharp") else None
        answer = {"status": "Success", "message": "", "compile_result": compiled}
        if "SUM" in code:
            answer["run_result"] = _run(stdout=_sum(stdin))
        elif "WRONG" in code:
            answer["run_result"] = _run(stdout="7\n")
        elif "CRASH" in code:
            answer.update(status="Failed", run_result=_run(rc=1, stderr="Traceback: boom"))
        elif "OOM" in code:
            answer.update(status="Failed", run_result=_run(rc=1, stderr="MemoryError"))
        elif "SLOW" in code:
            answer.update(status="Failed", run_result=_run("TimeLimitExceeded", rc=None))
        elif "NOCOMPILE" in code:
            answer.update(
                status="Failed",
                compile_result=_run(rc=1, stderr="a.cpp:1: error: expected ';'"),
                run_result=None,
            )
        elif "SANDBOXERROR" in code:
            answer = {"status": "SandboxError", "message": "exception on running code"}
        elif "FLAKY" in code and self.flaky_left > 0:
            self.flaky_left -= 1
            answer = {"status": "SandboxError", "message": "concurrent stdin failure"}
        elif "FLAKY" in code:
            answer["run_result"] = _run(stdout=_sum(stdin))
        elif "CMDERROR" in code:
            answer.update(status="Failed", run_result=_run("Error", rc=None, stderr="oops"))
        elif "EMPTYFAIL" in code:
            answer.update(status="Failed", run_result=None)
        elif "FAILEDOK" in code:  # Failed, yet every command finished well
            answer.update(status="Failed", run_result=_run(stdout=_sum(stdin)))
        elif "HANG" in code:
            await asyncio.sleep(3600)
        elif "GARBAGE" in code:
            return web.Response(text="<html>502 bad gateway</html>")
        else:
            answer["run_result"] = _run()
        return web.json_response(answer)


@pytest.fixture
def fusion():
    fake = FakeSandboxFusion()
    with StubServer([("POST", RUN_CODE_PATH, fake.run_code)]) as stub:
        fake.url = stub.url
        yield fake


def _client(fake, **kw) -> RemoteExecutor:
    kw.setdefault("retries", 1)
    kw.setdefault("backoff_s", 0.05)
    return RemoteExecutor([fake.url], dialect=SandboxFusionDialect(timeout_s=3.0), **kw)


def test_real_verdicts_map_to_ours(fusion):
    jobs = {
        "pass": ("cpp", "// SUM", ADD),
        "wrong": ("python", "# WRONG", ADD),
        "crash": ("python", "# CRASH", ADD),
        "memory": ("python", "# OOM", ADD),
        "timeout": ("javascript", "// SLOW", ADD),
        "compile": ("cpp", "// NOCOMPILE", ADD),
        "python_syntax": ("python", "def f(:\n", ADD),  # compiled here, as locally
    }
    with _client(fusion) as ex:
        got = dict(zip(jobs, ex.run_many(list(jobs.values()))))
        assert ex.stats["infra_errors"] == 0 and ex.stats["remote_retries"] == 0
    assert got["pass"].verdict is Verdict.PASS and got["pass"].tests_passed == 2
    wrong = got["wrong"]
    assert (wrong.verdict, wrong.tests_passed, wrong.tests_total) == (Verdict.WRONG_ANSWER, 0, 2)
    # the per-test detail feedback shows: the test, its input, expected and actual output
    assert wrong.failure.index == 0 and wrong.failure.input == "1 2\n"
    assert (wrong.failure.expected, wrong.failure.actual) == ("3\n", "7\n")
    assert got["crash"].verdict is Verdict.RUNTIME_ERROR and "boom" in got["crash"].detail
    assert got["memory"].verdict is Verdict.MEMORY_LIMIT
    assert got["timeout"].verdict is Verdict.TIMEOUT and got["timeout"].reward == -0.6
    assert (
        got["compile"].verdict is Verdict.COMPILE_ERROR and "expected ';'" in got["compile"].detail
    )
    assert got["python_syntax"].verdict is Verdict.COMPILE_ERROR
    # one request per test, stopped where the reward cannot change (crash on test 0)
    by_code = [r["code"] for r in fusion.requests]
    assert by_code.count("// SUM") == 2 and by_code.count("# CRASH") == 1
    assert "def f(:\n" not in by_code
    node = next(r for r in fusion.requests if r["code"] == "// SLOW")
    assert node["language"] == "nodejs" and node["run_timeout"] == 3.0 and node["stdin"] == "1 2\n"


@pytest.mark.parametrize("marker", ["SANDBOXERROR", "CMDERROR", "EMPTYFAIL", "FAILEDOK", "GARBAGE"])
def test_no_verdict_is_retried_then_masked_and_counted(fusion, marker):
    with _client(fusion, retries=2) as ex:
        result = ex.submit("python", f"# {marker}", ADD).result()
        assert result.verdict is Verdict.INFRA_ERROR and result.reward is None
        assert result.tests_total == 2 and "no verdict after 3 tries" in result.detail
        assert ex.stats["remote_retries"] == 2 and ex.stats["remote_no_verdict"] == 1
        assert ex.stats["infra_errors"] == 1
    assert len(fusion.requests) == 3


def test_a_sandbox_error_then_the_verdict(fusion):
    with _client(fusion, retries=2) as ex:
        result = ex.submit("python", "# FLAKY", ADD).result()
        assert result.verdict is Verdict.PASS and ex.stats["remote_retries"] == 1


def test_the_deadline_masks_a_hung_instance(fusion):
    with _client(fusion, retries=1, request_timeout_s=1.0) as ex:
        result = ex.submit("python", "# HANG", ADD).result(timeout=60)
        assert result.verdict is Verdict.INFRA_ERROR and "no answer in time" in result.detail


def test_what_run_code_cannot_express_is_refused_per_job(fusion):
    call = {"inputs": [[1, 2]], "outputs": [[3]], "fn_name": "add"}
    with _client(fusion) as ex:
        called, c_prog, js_only, py_only, cpp_only = ex.run_many(
            [
                ("python", "def add(a, b):\n    return a + b\n", call),
                ("c", "int main(){}", ADD),
                ("javascript", "let a = 1;"),
                ("python", "x = 1\n"),
                ("cpp", "// compiles"),
            ]
        )
    assert called.verdict is Verdict.INFRA_ERROR and "stdio only" in called.detail
    assert c_prog.verdict is Verdict.INFRA_ERROR and "no c there" in c_prog.detail
    assert js_only.verdict is Verdict.INFRA_ERROR and "no compile step" in js_only.detail
    assert py_only.verdict is Verdict.COMPILED  # compile() here, no request
    assert cpp_only.verdict is Verdict.COMPILED
    assert [r["code"] for r in fusion.requests] == ["// compiles"]


def test_one_line_of_config_and_masking_in_the_reward(fusion):
    cfg = RewardConfig(
        backend="sandbox_fusion",
        endpoints=(fusion.url,),
        retries=1,
        compile_weight=1.0,
        tests_weight=1.0,
        ast_weight=0.0,
        dfg_weight=0.0,
    )
    examples = [
        Example(id=f"e{i}", prompt="p", target="y", lang="python", tests=ADD, context_prefix="")
        for i in range(2)
    ]
    with CompositeReward(cfg) as reward:
        assert isinstance(reward.executor, RemoteExecutor)
        good, broken = reward.score(examples, ["# SUM", "# SANDBOXERROR"])
    assert good.verdict == "PASS" and not good.masked and good.total == 2.0
    assert broken.infra_error and broken.masked and broken.total == 0.0
    assert json.dumps(broken.columns())  # a plain row like any other


def test_make_executor_keeps_local_by_default():
    ex = make_executor(RewardConfig(workers=1))
    try:
        assert not isinstance(ex, RemoteExecutor)
    finally:
        ex.close()
