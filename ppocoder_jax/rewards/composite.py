"""The terminal score of a generated program: a weighted sum of execution and matching parts.

    score = compile_weight * r_compile + tests_weight * r_tests
            + ast_weight * r_ast + dfg_weight * r_dfg
            + sum_k function_weights[k] * plugin_k        (reward.functions, TRL signature)

r_compile is +1/-1 (SPEC), r_tests the CodeRL value of the unit-test verdict, r_ast / r_dfg the
CodeBLEU syntax / data-flow match against the reference program. When tests are run, the compile
verdict comes from the same sandboxed job (no second subprocess). Work runs on the executor's
host threads; this module only fans jobs out and gathers parts.

A sample whose execution hit an infrastructure error (missing toolchain, sandbox failure) has
`infra_error=True`: the learner masks it out instead of scoring it as a bad program. Reward
plugins (`rewards/plugins.py`) run once per batch on their own host thread beside the execution
and matching jobs; a plugin's None for a sample masks that sample the same way (`masked`).

Non-finite rewards are never scored: a NaN or an infinity from any part (compile, tests, ast,
dfg, a plugin's value, or the weighted total overflowing float32, the dtype the trainer keeps
rewards in) masks the sample, and the part is named in `RewardParts.nonfinite`. A sample masked
for a non-finite part or by a plugin has `total` 0.0, and its non-finite built-in parts read
0.0, so that nothing downstream sees an infinity.

`reward.extract` (`rewards/extract.py`) takes the program out of a Markdown answer before it
is built (`Example.program`); the plugins get the answer as the model wrote it.

One program must never end a run: any exception inside one sample's reward (matching, the
execution harness, building the program text) is caught at that sample. The sample comes back
with verdict REWARD_ERROR and `reward_error` set (the learner masks it like an infrastructure
error; evaluation counts it as a failure), and the program, its reference and the traceback
are saved as one JSON file under `error_dir` (`<run_dir>/reward_errors/`). A plugin that raises
fails its whole batch call: the exception is saved once for the batch (the plugin's spec, the
batch's ids, prompts and completions), and every sample of the batch is a reward error whose
`reward_error` names the plugin.

`RewardParts.columns()` (the trainer's per-sample reward columns; `CompositeReward.
column_names()` is the same names for the configured plugins, in order):

    total             the score (0.0 when masked for a non-finite part or by a plugin)
    valid             1 = scored, 0 = masked out of the update (1 - masked)
    compile, tests,   the parts (unweighted; a non-finite one reads 0.0)
    ast, dfg
    compiled, passed  1/0: the program compiled / passed its tests
    reward_error      1 = computing the reward raised (saved under error_dir)
    masked_infra      1 = the sandbox reported INFRA_ERROR
    masked_nonfinite  1 = some part (or the total) was NaN or infinite
    masked_plugin     1 = a plugin returned None, NaN or an infinity for the sample
    plugin/<name>     each plugin's value (NaN when that plugin masked the sample or failed)

The masked_* reasons and reward_error can hold together; valid is 0 when any of them is 1.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import os
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from ppocoder_jax.config import RewardConfig
from ppocoder_jax.data import Example

# The columns every sample has, in order; then one `plugin/<name>` per reward plugin.
BASE_COLUMNS = (
    "total",
    "valid",
    "compile",
    "tests",
    "ast",
    "dfg",
    "compiled",
    "passed",
    "reward_error",
    "masked_infra",
    "masked_nonfinite",
    "masked_plugin",
)
# The largest float32: a value beyond it is an infinity in the trainer's reward arrays.
_FLOAT32_MAX = 3.4028234663852886e38


def is_finite(value: float) -> bool:
    """Finite in float32 (the dtype of the trainer's reward arrays)."""
    return math.isfinite(value) and abs(value) <= _FLOAT32_MAX


@dataclass(frozen=True)
class RewardParts:
    total: float
    compile: float
    tests: float
    ast: float
    dfg: float
    verdict: str
    infra_error: bool
    # the error and the file that holds the sample, when computing its reward raised
    reward_error: str | None = None
    # the reward plugins' values (reward.functions order; None = the plugin gave no score:
    # None, NaN or an infinity, or it failed)
    functions: tuple[float | None, ...] = ()
    # their column names (`plugins.plugin_column_names`; empty: plugin/0, plugin/1, ...)
    function_names: tuple[str, ...] = ()
    # the parts that were NaN or infinite ("compile", "tests", "ast", "dfg", "total" or a
    # plugin's column name): the sample is masked, and never scored with them
    nonfinite: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.verdict == "PASS"

    @property
    def plugin_masked(self) -> bool:
        """A plugin returned None, NaN or an infinity for this sample (not: a plugin failed,
        which is a reward error)."""
        return self.reward_error is None and any(v is None for v in self.functions)

    @property
    def masked(self) -> bool:
        """Left out of the learner's update: no trustworthy score exists for this sample."""
        return (
            self.infra_error
            or self.reward_error is not None
            or any(v is None for v in self.functions)
            or bool(self.nonfinite)
        )

    @property
    def compiled(self) -> bool:
        return self.compile > 0

    def columns(self) -> dict[str, float]:
        """The sample's reward parts by name (the module docstring's table): what the rollout
        collector puts into the Experience (one [B] array per name) and the metrics average
        over valid samples."""
        columns = {
            "total": self.total,
            "valid": float(not self.masked),
            "compile": self.compile,
            "tests": self.tests,
            "ast": self.ast,
            "dfg": self.dfg,
            "compiled": float(self.compiled),
            "passed": float(self.passed),
            "reward_error": float(self.reward_error is not None),
            "masked_infra": float(self.infra_error),
            "masked_nonfinite": float(bool(self.nonfinite)),
            "masked_plugin": float(self.plugin_masked),
        }
        names = self.function_names or tuple(f"plugin/{i}" for i in range(len(self.functions)))
        for name, value in zip(names, self.functions, strict=True):
            columns[name] = math.nan if value is None else float(value)
        return columns


@dataclass(frozen=True)
class _PluginFailure:
    """A plugin's batch call raised: every sample of the batch is a reward error."""

    summary: str


class CompositeReward:
    """Scores batches of (example, generated text) with an Executor's thread pool."""

    def __init__(self, cfg: RewardConfig, executor=None, error_dir: str | Path | None = None):
        from ppocoder_jax.rewards.backends import make_executor

        self.cfg = cfg
        self.error_dir = Path(error_dir) if error_dir is not None else None
        self.errors_saved = 0
        self._error_lock = threading.Lock()
        self._owns_executor = executor is None
        # reward.backend: this host's sandbox, or reward servers elsewhere (backends.py)
        self.executor = executor or make_executor(cfg)
        self._match_pool = None
        if cfg.ast_weight or cfg.dfg_weight:
            from ppocoder_jax.rewards.matching import _match_module as matching

            if matching.cache_size() != cfg.match_cache_size:  # process-wide, per thread
                matching.set_cache_size(cfg.match_cache_size)
            self._match_pool = cf.ThreadPoolExecutor(max_workers=2, thread_name_prefix="match")
        from ppocoder_jax.rewards.plugins import load_reward_functions, plugin_column_names

        # import + signature checks now: a bad plugin is a one-line error before any work
        self.functions = load_reward_functions(cfg.functions, cfg.function_weights)
        self.function_names = tuple(plugin_column_names(self.functions))
        self._plugin_pool = None
        if self.functions:
            self._plugin_pool = cf.ThreadPoolExecutor(
                max_workers=min(len(self.functions), 4), thread_name_prefix="reward-fn"
            )

    def close(self) -> None:
        if self._owns_executor:
            self.executor.close()
        if self._match_pool is not None:
            self._match_pool.shutdown(wait=True)
        if self._plugin_pool is not None:
            self._plugin_pool.shutdown(wait=True)

    def column_names(self) -> list[str]:
        """The names of every sample's `RewardParts.columns()`, in order, for this reward's
        plugins: the same for every sample and every batch."""
        return [*BASE_COLUMNS, *self.function_names]

    def extract(self, output: str, lang: str | None) -> str:
        """The program text in a model answer (`reward.extract`; "none": the answer itself)."""
        if self.cfg.extract == "none":
            return output
        from ppocoder_jax.rewards.extract import extract_code

        return extract_code(output, lang, self.cfg.extract, self.cfg.extract_block)

    def check_functions(self, examples: list[Example]) -> None:
        """Start-up probe of the reward plugins on two reference solutions (UserError)."""
        from ppocoder_jax.rewards.plugins import probe

        probe(self.functions, examples)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def submit(self, examples: list[Example], outputs: list[str]) -> list[cf.Future]:
        """Start scoring; returns one future of RewardParts per sample (does not block)."""
        if len(examples) != len(outputs):
            raise ValueError(f"{len(examples)} examples for {len(outputs)} outputs")
        # one call per plugin for the whole batch (TRL's contract), beside the sandbox jobs
        batch = [
            self._plugin_pool.submit(self._call_plugin, rf, list(examples), list(outputs))
            for rf in self.functions
        ]
        futures = []
        for i, (example, output) in enumerate(zip(examples, outputs, strict=True)):
            futures.append(self._submit_one(example, output, [(f, i) for f in batch]))
        return futures

    def score(self, examples: list[Example], outputs: list[str]) -> list[RewardParts]:
        return [f.result() for f in self.submit(examples, outputs)]

    def _call_plugin(self, rf, examples: list[Example], outputs: list[str]):
        """One plugin's batch call: its values (non-finite ones kept, to be named), or one
        `_PluginFailure` for the whole batch when it raised (saved once, here)."""
        from ppocoder_jax.errors import UserError
        from ppocoder_jax.rewards.plugins import _one_line, call_reward_function

        try:
            return call_reward_function(rf, examples, outputs, keep_nonfinite=True)
        except Exception as err:  # the batch's samples are reward errors; the run goes on
            if isinstance(err, UserError):  # wrong length / type: the message names the spec
                summary = str(err).splitlines()[0][:300]
            else:
                summary = (
                    f"reward function {rf.spec} raised on a batch of {len(outputs)}: "
                    f"{_one_line(err)}"
                )
            saved = self._write_record(
                {
                    "plugin": rf.spec,
                    "batch_size": len(outputs),
                    "ids": [e.id for e in examples],
                    "lang": [e.lang for e in examples],
                    "prompts": [e.prompt for e in examples],
                    "completions": list(outputs),
                    "error": f"{type(err).__name__}: {err}",
                    "traceback": "".join(traceback.format_exception(err)),
                }
            )
            if saved is not None:
                summary += f" (saved to {saved})"
            return _PluginFailure(summary)

    def _submit_one(self, example: Example, output: str, plugins=()) -> cf.Future:
        try:
            return self._start_one(example, output, plugins)
        except Exception as err:  # building the program or submitting it failed
            done: cf.Future = cf.Future()
            done.set_result(self._error_parts(example, output, None, err))
            return done

    def _start_one(self, example: Example, output: str, plugins=()) -> cf.Future:
        cfg = self.cfg
        program = example.program(self.extract(output, example.lang))
        use_tests = cfg.tests_weight != 0 and example.tests is not None
        exec_future = self.executor.submit(
            example.lang, program, tests=example.tests if use_tests else None, link=cfg.link
        )
        match_future = None
        if self._match_pool is not None:
            match_future = self._match_pool.submit(
                _match, example.reference_program(), program, example.lang
            )
        result: cf.Future = cf.Future()
        pending = [f for f in (exec_future, match_future) if f is not None]
        pending += [f for f, _ in plugins]
        lock = threading.Lock()
        remaining = [len(pending)]

        # Combine on whichever thread finishes last, so no worker ever blocks on the other part.
        def part_done(_):
            with lock:
                remaining[0] -= 1
                if remaining[0]:
                    return
            try:
                parts = self._combine(exec_future.result(), match_future, use_tests, plugins)
                if parts.reward_error is not None:  # a plugin failed the batch (saved once)
                    parts = self._error_parts(example, output, program, parts)
                result.set_result(parts)
            except Exception as err:  # this sample only: masked and saved, the run goes on
                result.set_result(self._error_parts(example, output, program, err))
            except BaseException as err:  # (KeyboardInterrupt...) reaches the caller
                result.set_exception(err)

        for future in pending:
            future.add_done_callback(part_done)
        return result

    def _combine(self, execution, match_future, use_tests: bool, plugins=()) -> RewardParts:
        cfg = self.cfg
        verdict = (
            execution.verdict.name if hasattr(execution.verdict, "name") else str(execution.verdict)
        )
        infra = verdict == "INFRA_ERROR"
        r_compile = 1.0 if execution.compiled else -1.0
        r_tests = float(execution.reward) if (use_tests and not infra) else 0.0
        r_ast = r_dfg = 0.0
        if match_future is not None:
            matched = match_future.result()
            r_ast, r_dfg = matched.ast_match, matched.dfg_match
        if infra:
            r_compile = 0.0
        builtin = {"compile": r_compile, "tests": r_tests, "ast": r_ast, "dfg": r_dfg}
        nonfinite = [name for name, v in builtin.items() if not is_finite(float(v))]
        for name in nonfinite:
            builtin[name] = 0.0  # never an infinity in a column; the sample is masked
        failures, values = [], []
        for (future, i), name in zip(plugins, self.function_names, strict=True):
            batch = future.result()
            if isinstance(batch, _PluginFailure):
                failures.append(batch.summary)
                values.append(None)
                continue
            v = batch[i]
            if v is not None and not is_finite(v):
                nonfinite.append(name)
                v = None
            values.append(v)
        values = tuple(values)
        total = (
            cfg.compile_weight * builtin["compile"]
            + cfg.tests_weight * builtin["tests"]
            + cfg.ast_weight * builtin["ast"]
            + cfg.dfg_weight * builtin["dfg"]
        )
        for rf, v in zip(self.functions, values):
            if v is not None:
                total += rf.weight * v
        if not nonfinite and not is_finite(total):  # finite parts, an overflowing sum
            nonfinite.append("total")
        if nonfinite or any(v is None for v in values):
            total = 0.0  # masked: no score, and a finite one
        return RewardParts(
            total,
            builtin["compile"],
            builtin["tests"],
            builtin["ast"],
            builtin["dfg"],
            verdict,
            infra,
            "; ".join(failures) if failures else None,
            values,
            self.function_names,
            tuple(nonfinite),
        )

    def _error_parts(
        self, example: Example, output: str, program, err: Exception | RewardParts
    ) -> RewardParts:
        """The parts of a sample whose reward raised: a failure, masked from the update. `err`
        is the exception (saved now, for this sample), or the parts of a sample whose plugin
        failed its batch (saved once for the batch; the other plugins' values kept)."""
        if isinstance(err, RewardParts):
            summary, values = err.reward_error, err.functions
        else:
            summary = f"{type(err).__name__}: {err}".splitlines()[0][:300]
            saved = self._save_error(example, output, program, err)
            if saved is not None:
                summary += f" (saved to {saved})"
            values = (None,) * len(self.functions)
        return RewardParts(
            total=0.0,
            compile=-1.0,
            tests=0.0,
            ast=0.0,
            dfg=0.0,
            verdict="REWARD_ERROR",
            infra_error=False,
            reward_error=summary,
            functions=values,
            function_names=self.function_names,
        )

    def _save_error(self, example: Example, output: str, program, err: Exception) -> Path | None:
        if self.error_dir is None:
            return None
        try:
            reference = example.reference_program()
        except Exception as ref_err:
            reference = f"<reference unavailable: {ref_err!r}>"
        record = {
            "lang": example.lang,
            "program": program,
            "output": output,
            "prompt": example.prompt,
            "reference": reference,
            "tests": example.tests,
            "error": f"{type(err).__name__}: {err}",
            "traceback": "".join(traceback.format_exception(err)),
        }
        return self._write_record(record)

    def _write_record(self, record: dict) -> Path | None:
        """One JSON file under error_dir (None: no error_dir, or it could not be written)."""
        if self.error_dir is None:
            return None
        with self._error_lock:
            self.errors_saved += 1
            n = self.errors_saved
        try:
            self.error_dir.mkdir(parents=True, exist_ok=True)
            path = self.error_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{n:05d}.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(record, indent=1, default=repr), encoding="utf-8")
            tmp.replace(path)  # never a half-written file under the final name
            return path
        except OSError:  # a full disk must not end the run either; the summary still counts
            return None


def _match(reference: str, candidate: str, lang: str):
    from ppocoder_jax.rewards.matching import match

    return match(reference, candidate, lang)
