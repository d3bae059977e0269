"""`ppocoder plot` and the results pictures: every logged key has a deliberate place, constants
and counters are never curves, several runs overlay, and a run killed mid-write (or one with no
metrics at all) still plots what it has or says in one line why nothing can be plotted."""

from __future__ import annotations

import ast
import json
import math
import random
from pathlib import Path
from types import SimpleNamespace

import pytest

from ppocoder_jax.cli import main
from ppocoder_jax.pipeline import plots as P

COUNTERS = {"samples", "num_steps", "value_warmup", "infra_errors", "reward_errors", "rollout_lag"}


# Where a PPO iteration's logged keys are written, as dict literals: the trainer's loop, the
# learner's update, the collector's reward metrics and timings, the multi-turn metrics.
LOGGING_FUNCTIONS = {
    "ppocoder_jax/pipeline/ppo_trainer.py": ("run_iteration",),
    "ppocoder_jax/ppo/learner.py": ("learn",),
    "ppocoder_jax/rollout/collector.py": ("next", "_finish"),
    "ppocoder_jax/rollout/reward_columns.py": ("reward_metrics",),
    "ppocoder_jax/rollout/turns.py": ("turn_metrics",),
}


def _metrics_values(function):
    """What the function returns or assigns to `metrics` / `self.metrics`."""
    for node in ast.walk(function):
        if isinstance(node, ast.Return) and node.value is not None:
            yield node.value
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            named = [getattr(t, "id", getattr(t, "attr", "")) for t in targets]
            if "metrics" in named:
                yield node.value


def logged_ppo_keys() -> set[str]:
    """The keys a PPO iteration logs, read from the code that logs them (the dict literals of
    LOGGING_FUNCTIONS) and the update means of train_step.summarize_metrics."""
    from ppocoder_jax.ppo.train_step import summarize_metrics

    root = Path(__file__).resolve().parent.parent
    keys = set()
    for path, names in LOGGING_FUNCTIONS.items():
        module = ast.parse((root / path).read_text())
        functions = [
            node
            for node in ast.walk(module)
            if isinstance(node, ast.FunctionDef) and node.name in names
        ]
        assert len(functions) == len(names), f"{path}: {names} changed"
        for function in functions:
            for value in _metrics_values(function):
                for node in ast.walk(value):
                    if isinstance(node, ast.Dict):
                        keys |= {
                            k.value
                            for k in node.keys
                            if isinstance(k, ast.Constant) and isinstance(k.value, str)
                        }
    assert {"score", "pass_rate", "reward_wait_frac", "kl"} <= keys, "the logging moved"
    names = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac", "vf_clip_frac")
    totals = {name: 1.0 for name in names} | {"count": 2.0, "loss": 1.0, "grad_norm": 1.0}
    totals["policy_loss_optimised"] = 1.0
    state = SimpleNamespace(kl=SimpleNamespace(coef=0.1))
    return keys | set(summarize_metrics(totals, 4, state))


def ppo_row(step: int, rng: random.Random, keys: set[str]) -> dict:
    row = {"phase": "ppo", "step": step}
    for key in sorted(keys):
        row[key] = rng.random()
    row.update(
        samples=64,
        num_steps=4,
        value_warmup=int(step <= 2),
        infra_errors=0,
        reward_errors=int(step == 5),
        rollout_lag=int(step > 1),  # train.overlap_rollouts: the first batch is sampled afresh
        reward_ast=0.0,  # weight 0 in the demo: constant over the run
        reward_dfg=0.0,
        reward_compile=0.0,
        kl_coef=0.1,  # a fixed controller: constant
        pass_rate=min(1.0, 0.2 + 0.01 * step + 0.05 * rng.random()),
    )
    return row


def write_run(
    run_dir: Path, steps: int = 30, seed: int = 0, results: bool = True, sft: bool = True
) -> Path:
    rng = random.Random(seed)
    keys = logged_ppo_keys()
    rows = []
    if sft:
        for step in (0, 25, 50, 75, 99):
            row = {"phase": "sft", "step": step, "loss": 9.0 / (1 + step), "elapsed_s": step * 0.3}
            if step in (0, 99):
                row["val_loss"] = row["loss"] + 0.2
            rows.append(row)
    before, after = demo_results(0.40), demo_results(0.55)
    rows.append({"phase": "eval", "step": 0, **flat(before)})
    rows += [ppo_row(step, rng, keys) for step in range(1, steps + 1)]
    rows.append({"phase": "eval", "step": steps, **flat(after)})
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if results:
        data = {"seed": seed, "before": before, "after": after}
        (run_dir / "results.json").write_text(json.dumps(data))
    return run_dir


def demo_results(pass1: float) -> dict:
    def one(samples):
        return {
            "num_problems": 8,
            "samples_per_problem": samples,
            "pass@1": pass1 / samples,
            "compile_rate": 0.9,
            "infra_errors": 0,
            "per_template_pass": {"mod": pass1, "sum_gt": 1 - pass1, "between": 0.5},
            "mean_score": 0.1,
            "reward_errors": 0,
        }

    return {"greedy": one(1), "sampled": one(2)}


def flat(result: dict) -> dict:
    return {
        f"{mode}_{key}": value
        for mode, metrics in result.items()
        for key, value in metrics.items()
        if isinstance(value, (int, float))
    }


def texts(figure) -> list[str]:
    return [t.get_text() for ax in figure.axes for t in ax.texts]


def legend_labels(figure) -> list[str]:
    return [
        t.get_text()
        for ax in figure.axes
        if ax.get_legend() is not None
        for t in ax.get_legend().get_texts()
    ]


# ---------------------------------------------------------------------------------------------
# where each key goes


def test_every_logged_ppo_key_has_a_panel_or_the_caption():
    mapped = {k for panel in P.PPO_PANELS for k in panel.left + panel.right}
    unplaced = logged_ppo_keys() - mapped - set(P.PPO_CAPTION)
    assert not unplaced, f"give these a panel or a caption entry: {sorted(unplaced)}"
    assert COUNTERS <= set(P.PPO_CAPTION)
    assert not COUNTERS & mapped


def test_no_constant_or_counter_is_drawn(tmp_path, capsys):
    run = P.load_run(write_run(tmp_path / "run"))
    plot = P.training_figure([run], "ppo", smooth=0.9)
    drawn = {s.split("|")[1] for s in P.drawn_series(plot.figure)}
    assert drawn == {s.split("|")[1] for s in plot.series}
    constants = {"reward_ast", "reward_dfg", "reward_compile", "kl_coef"}
    assert not drawn & (COUNTERS | constants)
    assert {"score", "pass_rate", "kl", "policy_loss", "reward_wait_frac"} <= drawn
    # reward throughput beside the device's wait: busy fraction on its axis, programs/s right
    assert {"reward_busy_frac", "reward_programs_per_s"} <= drawn
    (rewards,) = [p for p in P.PPO_PANELS if "reward_wait_frac" in p.left]
    assert "reward_busy_frac" in rewards.left and rewards.right == ("reward_programs_per_s",)
    assert "time_total_s" in drawn  # sample + score + update
    for text in (
        "samples per iteration: 64",
        "value-only warm-up: iterations 1-2",
        "kl_coef: 0.1",
        "updates between sampling and learning (train.overlap_rollouts): 0-1",
    ):
        assert text in plot.caption.replace("\n", " "), text
    assert "reward errors (masked): 1 in all (1 of 30 iterations)" in plot.caption.replace(
        "\n", " "
    )
    # no "other" panel for the keys the trainer logs; each panel titled, axes labelled
    titles = [ax.get_title(loc="left") for ax in plot.figure.axes if ax.get_title(loc="left")]
    assert not any(t.startswith("Other") for t in titles)
    assert len(titles) == len(P.PPO_PANELS)
    for ax in plot.figure.axes:
        if ax.get_lines():  # a panel or its right-hand twin
            assert ax.get_ylabel()
            if ax.get_title(loc="left"):
                assert ax.get_xlabel() == "PPO iteration"
    # noisy series: faint raw line under the EMA line
    lines = {line.get_gid(): line for ax in plot.figure.axes for line in ax.get_lines()}
    raw, smooth = lines["run|score|raw"], lines["run|score|smooth"]
    assert raw.get_alpha() < 0.5 and smooth.get_linewidth() > raw.get_linewidth()
    assert list(smooth.get_ydata()) == pytest.approx(P.ema(list(raw.get_ydata()), 0.9))
    assert "run|kl_coef|raw" not in lines
    # the demo's held-out pass@1 before/after is marked on the pass-rate panel
    assert "held-out pass@1 greedy" in legend_labels(plot.figure)
    P.save([plot], tmp_path / "out")
    assert capsys.readouterr().err == ""


def test_ema_is_debiased_and_skips_nan():
    assert P.ema([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])
    out = P.ema([0.0, math.nan, 10.0], 0.5)
    assert out[0] == 0.0 and out[1] == 0.0 and out[2] == pytest.approx(10 * 0.5 / 0.75)
    assert P.ema([2.0, 4.0], 0.0) == [2.0, 4.0]


def test_smoothing_flag_zero_draws_raw_only(tmp_path):
    run_dir = write_run(tmp_path / "run")
    assert main(["plot", str(run_dir), "--smooth", "0"]) == 0
    plot = P.training_figure([P.load_run(run_dir)], "ppo", smooth=0.0)
    gids = [line.get_gid() for ax in plot.figure.axes for line in ax.get_lines()]
    assert gids and not any(g.endswith("|smooth") for g in gids)
    assert main(["plot", str(run_dir), "--smooth", "1.5"]) == 2


# ---------------------------------------------------------------------------------------------
# the pictures of one run


def test_plot_writes_curves_and_results_of_a_run(tmp_path, capsys):
    run_dir = write_run(tmp_path / "run")
    assert main(["plot", str(run_dir)]) == 0
    out = capsys.readouterr()
    names = sorted(Path(line).name for line in out.out.split())
    assert names == ["ppo.png", "results.png", "sft.png"]
    assert out.err == ""
    for name in names:
        assert (run_dir / "plots" / name).stat().st_size > 20_000
    # no picture of the two-point eval phase: it is the results bars and the markers
    assert not (run_dir / "plots" / "eval.png").exists()


def test_results_bars_before_after_with_numbers(tmp_path):
    run = P.load_run(write_run(tmp_path / "run"))
    columns = P.demo_columns(run)
    assert [label for label, _ in columns] == ["SFT (before PPO)", "after PPO (30 iterations)"]
    plot = P.results_figure(columns, "results")
    assert plot.series == [
        "greedy|pass@1",
        "sampled|pass@1",
        "greedy|compile_rate",
        "sampled|compile_rate",
    ]
    shown = texts(plot.figure)
    assert "40.0%" in shown and "55.0%" in shown  # greedy pass@1 before / after on the bars
    assert "27.5%" in shown  # sampled after (0.55 / 2)
    titles = [ax.get_title(loc="left") for ax in plot.figure.axes]
    assert "Per template, greedy (largest gain first)" in titles
    assert "Per template, sampled (largest gain first)" in titles
    ticks = [t.get_text() for t in plot.figure.axes[0].get_xticklabels()]
    assert ticks[0] == "pass@1\ngreedy\n+15.0 points"
    # per-template order: largest gain first (mod +15, between 0, sum_gt -15)
    per_template = next(
        ax for ax in plot.figure.axes if ax.get_title(loc="left").endswith("first)")
    )
    assert [t.get_text() for t in per_template.get_yticklabels()] == ["mod", "between", "sum_gt"]


def test_results_without_results_json_come_from_the_eval_rows(tmp_path):
    run = P.load_run(write_run(tmp_path / "run", results=False))
    columns = P.demo_columns(run)
    assert len(columns) == 2 and columns[1][1]["greedy"]["pass@1"] == pytest.approx(0.55)
    assert P.results_figure(columns, "t") is not None


def test_multiturn_results_show_the_first_attempt_and_the_fix_rate():
    before = {"num_problems": 3, "pass@1": 0.4, "pass@1_turn1": 0.3, "fix_rate": 0.1}
    after = {"num_problems": 3, "pass@1": 0.7, "pass@1_turn1": 0.5, "fix_rate": 0.4}
    columns = [("SFT", {"greedy": before}), ("PPO", {"greedy": after})]
    plot = P.results_figure(columns, "2 turns")
    assert plot.series == ["greedy|pass@1", "greedy|pass@1_turn1", "greedy|fix_rate"]
    ticks = [t.get_text() for t in plot.figure.axes[0].get_xticklabels()]
    assert ticks[2] == "fix rate\ngreedy\n+30.0 points"


def test_per_difficulty_table_gets_its_own_panel():
    metrics = {"num_problems": 3, "pass@1": 0.2, "compile_rate": 0.9}
    metrics["per_difficulty_pass"] = {"introductory": 0.4, "interview": 0.1, "competition": 0.0}
    plot = P.eval_figure(metrics, "APPS", mode="greedy")
    titles = [ax.get_title(loc="left") for ax in plot.figure.axes]
    assert "Per difficulty, greedy" in titles


def test_completion_results_show_their_metrics_and_the_trivial_floors():
    def one(compile_rate, chars):
        return {
            "num_examples": 20,
            "compile_rate": compile_rate,
            "exact_match": 0.05,
            "edit_similarity": 0.4,
            "mean_output_chars": chars,
            "mean_reference_chars": 30.0,
            "floor_empty_compile_rate": 0.25,
            "floor_best_constant_compile_rate": 0.45,
            "floor_best_constant": "pass",
            "reward_errors": 0,
        }

    columns = [("SFT", {"greedy": one(0.5, 28.0)}), ("PPO", {"greedy": one(0.7, 26.0)})]
    plot = P.results_figure(columns, "completion")
    assert plot.series == ["greedy|compile_rate", "greedy|exact_match", "greedy|edit_similarity"]
    labels = legend_labels(plot.figure)
    assert "floor: empty completion (25.0%)" in labels
    assert "floor: best constant (45.0%)" in labels
    assert "references (30)" in labels  # output length beside the reference length
    assert "'pass'" in plot.caption
    translation = {"num_examples": 5, "compile_rate": 0.8, "bleu": 0.3, "codebleu": 0.35}
    plot = P.eval_figure(translation, "translation")
    assert plot.series == ["|compile_rate", "|bleu", "|codebleu"]
    assert {"80.0%", "30.0%", "35.0%"} <= set(texts(plot.figure))


def test_eval_json_is_pictured(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    metrics = demo_results(0.5)["greedy"]
    (run_dir / "eval_test.json").write_text(json.dumps(metrics))
    path = P.plot_eval(metrics, run_dir / "plots", "eval_test", "eval", "greedy")
    assert path == run_dir / "plots" / "eval_test.png" and path.stat().st_size > 10_000
    # `ppocoder plot` on a directory holding only eval_<split>.json: that picture, a warning
    assert main(["plot", str(run_dir)]) == 0
    out = capsys.readouterr()
    assert out.out.split() == [str(run_dir / "plots" / "eval_test.png")]
    assert out.err.count("\n") == 1 and "metrics.jsonl not found" in out.err


# ---------------------------------------------------------------------------------------------
# several runs


def test_runs_overlay_with_labels(tmp_path, capsys):
    a = write_run(tmp_path / "a" / "value", seed=1)
    b = write_run(tmp_path / "b" / "group", steps=20, seed=2)
    out = tmp_path / "compare"
    assert main(["plot", str(a), str(b), "--out", str(out), "--labels", "value,group"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["ppo.png", "results.png", "sft.png"]
    capsys.readouterr()
    runs = [P.load_run(a, "value"), P.load_run(b, "group")]
    plot = P.training_figure(runs, "ppo")
    drawn = P.drawn_series(plot.figure)
    for key in ("score", "kl", "pass_rate", "entropy"):
        assert {f"value|{key}", f"group|{key}"} <= drawn
    assert not {s for s in drawn if s.split("|")[1] in COUNTERS | {"kl_coef"}}
    assert {"value", "group"} <= set(legend_labels(plot.figure))
    # same SFT evaluation in both runs: one "before" bar and each run's "after"
    columns, colours = P.comparison_columns(runs)
    assert [label for label, _ in columns] == [
        "SFT (before PPO)",
        "value: after PPO (30 iterations)",
        "group: after PPO (20 iterations)",
    ]
    assert len(colours) == 3


def test_overlay_legend_defaults_to_directory_names(tmp_path):
    a, b = write_run(tmp_path / "kl-fixed"), write_run(tmp_path / "kl-adaptive", seed=3)
    plot = P.figures_for([P.load_run(a), P.load_run(b)])[0]
    assert {"kl-fixed", "kl-adaptive"} <= set(legend_labels(plot.figure))


def test_overlay_usage_errors(tmp_path, capsys):
    a, b = write_run(tmp_path / "a"), write_run(tmp_path / "b")
    assert main(["plot", str(a), str(b)]) == 2  # several runs need --out
    assert main(["plot", str(a), str(b), "--out", str(tmp_path / "o"), "--labels", "x"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "--labels" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# a run killed mid-write, an empty run, no run


def test_truncated_last_line_plots_the_rest_with_one_warning(tmp_path, capsys):
    run_dir = write_run(tmp_path / "killed", results=False)
    text = (run_dir / "metrics.jsonl").read_text()
    text = text[: text.rindex('{"phase": "eval"')]  # killed before the final evaluation...
    text += '{"phase": "ppo", "step": 31, "score": 0.'  # ... in the middle of a line
    (run_dir / "metrics.jsonl").write_text(text)
    assert main(["plot", str(run_dir)]) == 0
    out = capsys.readouterr()
    assert sorted(Path(p).name for p in out.out.split()) == ["ppo.png", "results.png", "sft.png"]
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and "skipped 1 unreadable line" in lines[0]
    assert "killed mid-write" in lines[0] and "Traceback" not in out.err
    # the results picture holds the one evaluation there is (before PPO)
    assert [label for label, _ in P.demo_columns(P.load_run(run_dir))] == ["SFT (before PPO)"]


def test_a_single_ppo_iteration_is_drawn_not_dropped_as_constant(tmp_path):
    run_dir = write_run(tmp_path / "one", steps=1, results=False, sft=False)
    plot = P.training_figure([P.load_run(run_dir)], "ppo")
    assert "one|score" in P.drawn_series(plot.figure)


@pytest.mark.parametrize("content", ["", "\n", '{"phase": "ppo", "st'])
def test_empty_metrics_without_results_is_a_one_line_error(tmp_path, capsys, content):
    run_dir = tmp_path / "empty"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text(content)
    assert main(["plot", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith("ppocoder plot: error: nothing to plot")
    assert len(err.splitlines()) == 2  # the warning about the file, then the error


def test_empty_metrics_with_results_plots_the_results(tmp_path, capsys):
    run_dir = write_run(tmp_path / "r")
    (run_dir / "metrics.jsonl").write_text("")
    assert main(["plot", str(run_dir)]) == 0
    out = capsys.readouterr()
    assert [Path(p).name for p in out.out.split()] == ["results.png"]
    assert "holds no metrics yet" in out.err and out.err.count("\n") == 1


def test_missing_directory_is_a_one_line_error(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "nothing to plot" in err


def test_one_broken_run_among_several_still_overlays_the_others(tmp_path, capsys):
    good = write_run(tmp_path / "good")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metrics.jsonl").write_text('{"phase": "ppo", "step": 1, "score"')
    assert main(["plot", str(good), str(broken), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "ppo.png").exists()
    assert "Traceback" not in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# a real tiny run


def test_real_tiny_demo_and_eval_pictures(tmp_path, capsys):
    """One real tiny demo (the sizes of test_pipeline_e2e): the demo writes the results picture
    and the curves, every key it logged has its place, and `ppocoder eval` adds its picture."""
    from test_pipeline_e2e import TINY

    run_dir = tmp_path / "demo"
    assert main(["demo", *TINY, f"train.run_dir={run_dir}", "train.steps=3"]) == 0
    for name in ("ppo.png", "sft.png", "results.png"):
        assert (run_dir / "plots" / name).stat().st_size > 20_000, name
    assert f"{run_dir / 'plots' / 'results.png'}" in capsys.readouterr().out
    run = P.load_run(run_dir)
    logged = {k for r in run.rows if r["phase"] == "ppo" for k in r} - {"phase", "step"}
    mapped = {k for panel in P.PPO_PANELS for k in panel.left + panel.right}
    assert logged <= mapped | set(P.PPO_CAPTION)
    plot = P.training_figure([run], "ppo")
    drawn = {s.split("|")[1] for s in P.drawn_series(plot.figure)}
    assert drawn and not drawn & COUNTERS
    assert not any(ax.get_title(loc="left").startswith("Other") for ax in plot.figure.axes)
    series = P.phase_series(run.rows, "ppo")
    for key in drawn:
        assert not P.is_constant(series[key][1]), key
    # `ppocoder eval` pictures its eval_<split>.json beside the demo's pictures
    overrides = [*TINY, f"train.run_dir={run_dir}", f"model.path={run_dir / 'final_model'}"]
    assert main(["eval", "--config", "demo", *overrides]) == 0
    assert (run_dir / "plots" / "eval_test.png").stat().st_size > 10_000
    assert (run_dir / "plots" / "results.png").exists()  # not overwritten by the eval


def test_reward_plugins_get_a_panel_and_their_masked_counts_the_caption(tmp_path):
    """reward_plugin/<name> means are curves in a panel of their own; masked_plugin/<name>
    counts are summarised in the caption, never drawn."""
    rng = random.Random(1)
    rows = []
    for step in range(1, 9):
        rows.append({"phase": "ppo", "step": step, "score": rng.random(),
                     "reward_plugin/short_bonus": rng.random(),
                     "reward_plugin/style": rng.random(),
                     "masked_plugin/short_bonus": step % 2})  # fmt: skip
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plot = P.training_figure([P.load_run(tmp_path)], "ppo")
    drawn = {s.split("|")[1] for s in P.drawn_series(plot.figure)}
    assert {"reward_plugin/short_bonus", "reward_plugin/style"} <= drawn
    assert "masked_plugin/short_bonus" not in drawn
    assert "masked_plugin/short_bonus" in plot.caption
