"""The embedded program-synthesis family: determinism, held-out splits, tests that catch bugs."""

from collections import Counter

import pytest

from ppocoder_jax.data.synthesis_demo import (
    DEFAULT_POPULAR,
    TEMPLATES,
    SynthesisDemoConfig,
    build_synthesis_demo,
    corpus_stats,
    rates_by_template,
)


def _passes(program: str, test_code: str) -> bool:
    ns: dict = {}
    try:
        exec(compile(program + "\n" + test_code, "<t>", "exec"), ns)  # trusted generated code
    except Exception:
        return False
    return True


@pytest.fixture(scope="module")
def task():
    return build_synthesis_demo(SynthesisDemoConfig())


def test_sizes_and_templates(task):
    assert len(task.train) == 4000 and len(task.val) == 200 and len(task.test) >= 500
    assert len(TEMPLATES) >= 20
    assert {ex.meta["template"] for ex in task.test} == set(TEMPLATES)
    assert task.kind == "synthesis"
    assert len({ex.id for ex in task.train + task.val + task.test}) == 4200 + len(task.test)


def test_deterministic_and_seed_dependent():
    cfg = SynthesisDemoConfig(num_train=300, num_val=20, num_test=60)
    a, b = build_synthesis_demo(cfg), build_synthesis_demo(cfg)
    assert a == b
    c = build_synthesis_demo(SynthesisDemoConfig(num_train=300, num_val=20, num_test=60, seed=1))
    assert [e.prompt for e in c.test] != [e.prompt for e in a.test]


def test_heldout_parameters_never_in_train(task):
    train = {(e.meta["template"], tuple(sorted(e.meta["params"].items()))) for e in task.train}
    for ex in task.val + task.test:
        key = (ex.meta["template"], tuple(sorted(ex.meta["params"].items())))
        assert key not in train, ex.prompt
    test_prompts = [e.prompt for e in task.test]
    assert len(set(test_prompts)) == len(test_prompts)


def test_reference_passes_and_every_bug_fails(task):
    n_bugs = 0
    for ex in task.train + task.val + task.test:
        assert ex.program(ex.target) == ex.target and ex.context_prefix == ""
        assert _passes(ex.meta["reference"], ex.tests["test_code"]), ex.id
        for kind, program in ex.meta["bug_variants"]:
            n_bugs += 1
            assert not _passes(program, ex.tests["test_code"]), (ex.id, kind, program)
        # the noisy training target passes exactly when it is labelled correct
        assert _passes(ex.target, ex.tests["test_code"]) == ex.meta["is_correct"], ex.id
        assert ex.tests["test_code"].count("assert") >= 4
    assert n_bugs > 2 * len(task.test)


def test_heldout_targets_are_correct(task):
    for ex in task.val + task.test:
        assert ex.meta["is_correct"] and ex.target == ex.meta["reference"]
        assert ex.reference_program() == ex.target


def test_noisy_corpus_statistics(task):
    stats = corpus_stats(task.train)
    for name, s in stats.items():
        share = s["correct"] / s["n"]
        if name in DEFAULT_POPULAR:
            # a popular wrong answer dominates, yet the correct variant keeps real probability
            assert 0.15 <= share <= 0.45, (name, share)
            top_bug, top_n = Counter(s["bugs"]).most_common(1)[0]
            assert top_n / s["n"] >= 0.5, (name, s)
        else:
            assert 0.65 <= share <= 0.92, (name, share)
    kinds = {ex.meta["bug"] for ex in task.train}
    assert {"off_by_one", "comparison", "operator", "initial_value"} <= kinds


def test_short_prompts_and_numbers_copied(task):
    for ex in task.test:
        assert ex.prompt.endswith(f"def f({ex.meta['arg']}):")
        assert ex.target.startswith(f"def f({ex.meta['arg']}):\n    ")
        for v in ex.meta["params"].values():
            assert str(v) in ex.prompt and str(v) in ex.target
        assert len(ex.target.splitlines()) <= 6


def test_rates_change_the_corpus():
    clean = build_synthesis_demo(
        SynthesisDemoConfig(num_train=400, num_val=5, num_test=30, bug_rate=0.0, popular_rate=0.0)
    )
    assert all(ex.meta["is_correct"] for ex in clean.train)
    with pytest.raises(ValueError, match="unknown popular template"):
        SynthesisDemoConfig(popular_templates=("nope",))


def test_rates_by_template(task):
    exs = task.test[:44]
    passed = [ex.meta["template"] != "mod" for ex in exs]
    rates = rates_by_template(exs, passed)
    assert rates["mod"] == 0.0 and rates["sum_gt"] == 1.0 and rates["other"] == 1.0
    assert 0 < rates["popular"] < 1
    with pytest.raises(ValueError):
        rates_by_template(exs, passed[:-1])


def _keys(examples):
    return {(e.meta["template"], tuple(sorted(e.meta["params"].items()))) for e in examples}


def test_rl_problems_use_parameters_no_other_split_has():
    base = build_synthesis_demo(SynthesisDemoConfig(num_train=800))
    split = build_synthesis_demo(SynthesisDemoConfig(num_train=800, rl_fraction=0.2, num_rl=300))
    assert base.rl == [] and base.ppo_examples() is base.train
    assert len(split.rl) == 300 and split.ppo_examples() is split.rl
    # the held-out problems do not move when a PPO pool is carved out of the training pool
    assert [e.prompt for e in split.test] == [e.prompt for e in base.test]
    rl = _keys(split.rl)
    assert not rl & _keys(split.train)
    assert not rl & _keys(split.test) and not rl & _keys(split.val)
    assert len({e.meta["template"] for e in split.rl}) == len(TEMPLATES)
    for e in split.rl[:40]:  # correct references with tests that pass them
        assert e.meta["is_correct"] and _passes(e.target, e.tests["test_code"])


@pytest.mark.parametrize(
    "kwargs",
    [dict(rl_fraction=0.2), dict(num_rl=10), dict(rl_fraction=0.8, num_rl=10)],
)
def test_rl_split_bad_settings(kwargs):
    with pytest.raises(ValueError):
        SynthesisDemoConfig(**kwargs)


def test_fractions_that_empty_a_training_pool_are_named():
    # the smallest templates have 39 parameter tuples: ceil(19.5) + ceil(11.7) + ceil(7.4) = 40
    cfg = SynthesisDemoConfig(test_fraction=0.5, val_fraction=0.3, rl_fraction=0.19, num_rl=10)
    with pytest.raises(ValueError, match="leave none for training"):
        build_synthesis_demo(cfg)


def test_registry_turns_synthesis_errors_into_a_config_error():
    from ppocoder_jax.config import load_config
    from ppocoder_jax.data.registry import load_task
    from ppocoder_jax.errors import UserError

    cfg = load_config(None, ["data.synth_rl_fraction=0.95", "data.synth_num_rl=10"])
    with pytest.raises(UserError, match="data.synth_"):
        load_task(cfg.data)


def test_each_template_splits_its_numbers_by_its_own_rank():
    # One rank for all templates gave every single-number template the same PPO values, which
    # PPO learnt as a prior answer; with a rank per template the PPO values differ between them
    # and a held-out value of one template is a corpus value of others.
    task = build_synthesis_demo(SynthesisDemoConfig(num_train=3000, rl_fraction=0.2, num_rl=2000))

    def values(examples):
        out: dict[str, set] = {}
        for e in examples:
            if list(e.meta["params"]) == ["k"]:
                out.setdefault(e.meta["template"], set()).add(e.meta["params"]["k"])
        return out

    rl, train, test = values(task.rl), values(task.train), values(task.test)
    assert len(rl) >= 5
    assert len({frozenset(v) for v in rl.values()}) == len(rl)  # no two templates share them
    for name, held_out in test.items():
        elsewhere = set().union(*(v for other, v in train.items() if other != name))
        assert held_out & elsewhere, name
        assert not held_out & train.get(name, set()), name  # never within the same template
