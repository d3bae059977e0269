"""One typed configuration tree for every job.

Presets live in configs/*.yaml; `key.sub=value` overrides come from the command line. Loading
validates names, types and ranges and raises `UserError` with the dotted key in the message.
Every run writes the resolved tree to `<run_dir>/config.yaml` (see `save_config`).

Each section belongs to one stage of the data flow; add fields there (with a default and a
range check in `__post_init__`) rather than reading ad-hoc dicts.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ppocoder_jax.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def _check(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise UserError(f"config key {key!r}: {message}")


# The projections LoRA can adapt, by Hugging Face module name: decoder-only, then T5
# (model/lora.py maps each to the family's parameters; a name the model lacks is refused there).
LORA_TARGETS = (
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    "q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo",
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class LoraConfig:
    """Low-rank adapters on the policy (docs/lora.md): only the adapters and the value head
    train; the reference is the base with the adapters off."""

    # Adapter rank; 0 = LoRA off (full fine-tuning).
    rank: int = 0
    # The adapters' update is scaled by alpha / rank (PEFT's lora_alpha).
    alpha: float = 16.0
    # Must be 0: dropout on the adapters' inputs would make the train step's log-probs differ
    # from the sampler's at ratio 1 (the key exists so PEFT configs map one to one).
    dropout: float = 0.0
    # Projections that get adapters, by their Hugging Face module names; empty = all of the
    # family's. Decoder-only: q_proj k_proj v_proj o_proj gate_proj up_proj down_proj. T5: q k
    # v o (self- and cross-attention) and wi wo, or wi_0 wi_1 wo in gated (v1.1) models.
    targets: tuple[str, ...] = ()
    # A PEFT adapter directory (adapter_config.json + adapter_model.safetensors) to start from
    # instead of fresh adapters; its rank, alpha and targets must match these keys.
    init_from: str = ""

    @property
    def enabled(self) -> bool:
        return self.rank != 0

    def __post_init__(self):
        _check(self.rank >= 0, "model.lora.rank", "must be > 0 (or 0 for LoRA off)")
        if not self.enabled:
            return
        _check(self.alpha > 0, "model.lora.alpha", "must be > 0")
        _check(
            self.dropout == 0.0,
            "model.lora.dropout",
            "must be 0 (dropout on the adapters would break the PPO ratio at 1)",
        )
        unknown = [t for t in self.targets if t not in LORA_TARGETS]
        _check(
            not unknown,
            "model.lora.targets",
            f"unknown target {unknown[0]!r} (known: {', '.join(LORA_TARGETS)})" if unknown else "",
        )


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Where the policy comes from and how it computes."""

    # A Hugging Face directory, our checkpoint directory, or "" to build `tiny_*` from scratch.
    path: str = ""
    # "t5" (CodeT5, encoder-decoder) or "decoder" (Llama / Qwen2 / Qwen3). With `path` the
    # family is read from its config.json ("" accepts either; a named family must match);
    # without, it picks the architecture of the tiny model built from scratch ("" = t5).
    family: Literal["", "t5", "decoder"] = ""
    # Dimensions used only when `path` is empty (the embedded demo's small model). For the
    # decoder family (Qwen2 architecture): d_model = hidden size, d_ff = MLP size, num_layers
    # = layers, num_heads = query heads, d_kv = head size, num_kv_heads = key/value heads.
    tiny_d_model: int = 256
    tiny_d_ff: int = 1024
    tiny_num_layers: int = 3
    tiny_num_decoder_layers: int = 3
    tiny_num_heads: int = 4
    tiny_d_kv: int = 64
    tiny_num_kv_heads: int = 2
    # Where the tiny model starts when `path` is empty: "random" initialisation, or
    # "pretrained": the embedded model of these tiny_* dimensions pretrained on the standard
    # library by `ppocoder pretrain` (pretrain.*; built on first use and cached,
    # docs/pretraining.md). A `path` (e.g. an SFT model of that start) takes precedence.
    init: Literal["random", "pretrained"] = "random"
    # Tokenizer directory; "" means: the model's own, else the embedded code tokenizer.
    tokenizer: str = ""
    compute_dtype: Literal["float32", "bfloat16"] = "float32"
    # Recompute each layer's activations in the backward pass of PPO and SFT steps instead of
    # keeping them: memory for one layer's internals, about one more forward pass of time.
    remat: bool = False
    value_head_dropout: float = 0.1
    # Low-rank adapters (rank 0 = off).
    lora: LoraConfig = field(default_factory=LoraConfig)

    def __post_init__(self):
        for name in ("tiny_d_model", "tiny_d_ff", "tiny_num_layers", "tiny_num_heads", "tiny_d_kv"):
            _check(getattr(self, name) > 0, f"model.{name}", "must be > 0")
        _check(
            self.tiny_num_kv_heads > 0 and self.tiny_num_heads % self.tiny_num_kv_heads == 0,
            "model.tiny_num_kv_heads",
            "must be > 0 and divide model.tiny_num_heads",
        )
        _check(
            0.0 <= self.value_head_dropout < 1.0, "model.value_head_dropout", "must be in [0, 1)"
        )


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Which task and dataset feed the prompts."""

    task: Literal[
        "synthesis_demo",
        "completion_stdlib",
        "completion",
        "translation",
        "apps",
        "mbpp",
        "humaneval",
        "problems",  # your own problem file(s): data.path (docs/problems.md)
    ] = "synthesis_demo"  # the names of ppocoder_jax/data/registry.py's TASKS table
    path: str = ""  # local dataset path (or a HF dataset id when the hub is reachable)
    source_lang: str = "python"
    target_lang: str = "python"
    max_source_length: int = 400
    max_target_length: int = 400
    num_train: int = 0  # 0 = all
    num_eval: int = 0
    seed: int = 0
    # synthesis_demo: the embedded program-synthesis family (ppocoder_jax/data/synthesis_demo.py)
    synth_num_train: int = 4000
    synth_num_val: int = 200
    synth_num_test: int = 600
    # PPO problems on parameters held out of the supervised corpus (0/0 = PPO uses train)
    synth_rl_fraction: float = 0.0
    synth_num_rl: int = 0
    synth_bug_rate: float = 0.2  # random plausible bug in a training solution
    synth_popular_rate: float = 0.65  # popular templates: share of solutions with THE popular bug
    synth_popular_templates: tuple[str, ...] = (
        "sum_gt",
        "count_between",
        "sum_range",
        "product_gt",
        "mod",
    )
    # completion tasks: target = last `completion_tokens` tokens of a method of >= min tokens
    completion_tokens: int = 25
    completion_min_tokens: int = 64
    # problems: what to do with a problem that has no tests ("skip" it and say how many were
    # skipped, or stop with an "error" naming it)
    problems_without_tests: Literal["skip", "error"] = "skip"
    # mbpp: the asserts the prompt lists: "all" (the MBPP paper's prompts) or "public" (the
    # first only, so multi-turn training never shows the private asserts that score it)
    mbpp_prompt_tests: Literal["all", "public"] = "all"
    # How prompts reach the model: "raw" (the text as it is) or "chat" (each prompt, as one
    # user message or the problem's own messages, rendered by the tokenizer's chat template
    # with the generation prompt; for instruct / chat models).
    prompt_format: Literal["raw", "chat"] = "raw"
    system_prompt: str = ""  # chat: a system message put first ("" = none)
    # chat: extra variables for the template, e.g. {enable_thinking: false} for Qwen3
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        _check(
            isinstance(self.chat_template_kwargs, dict)
            and all(isinstance(k, str) for k in self.chat_template_kwargs),
            "data.chat_template_kwargs",
            "must be a mapping of names to values",
        )
        _check(self.max_source_length > 0, "data.max_source_length", "must be > 0")
        _check(self.max_target_length > 0, "data.max_target_length", "must be > 0")
        _check(self.num_train >= 0 and self.num_eval >= 0, "data.num_train", "must be >= 0")
        for name in ("synth_num_train", "synth_num_val", "synth_num_test"):
            _check(getattr(self, name) >= 1, f"data.{name}", "must be >= 1")
        _check(0 <= self.synth_bug_rate <= 1, "data.synth_bug_rate", "must be in [0, 1]")
        _check(0 <= self.synth_popular_rate <= 1, "data.synth_popular_rate", "must be in [0, 1]")
        _check(self.completion_tokens >= 1, "data.completion_tokens", "must be >= 1")
        _check(
            self.completion_min_tokens > self.completion_tokens,
            "data.completion_min_tokens",
            "must be > data.completion_tokens",
        )


@dataclass(frozen=True, kw_only=True)
class RolloutConfig:
    """Sampling (SPEC: top-k = 'action space', temperature 1, top-p 1)."""

    max_new_tokens: int = 400
    temperature: float = 1.0
    top_k: int = 5
    top_p: float = 1.0
    num_samples: int = 1
    # Prompt / output lengths are rounded up to one of these buckets to bound recompilation.
    length_buckets: tuple[int, ...] = (32, 64, 128, 256, 400, 512)
    # How a token is drawn from the filtered distribution (rollout/sampler.py): "cdf" (inverse
    # CDF: one uniform per row and step) or "gumbel" (jax.random.categorical: a random number
    # per vocabulary entry and step). The same distribution; cdf is far cheaper on a CPU; they
    # draw other tokens for the same seed.
    draw: Literal["gumbel", "cdf"] = "cdf"
    # Training rollouts of iteration i draw at temperature_cycle[i % len] instead of
    # `temperature` (empty: always `temperature`); e.g. [1.0, 0.7] alternates. The log-probs
    # PPO trains on are the T=1 policy's either way (rollout/sampler.py).
    temperature_cycle: tuple[float, ...] = ()
    # Stop strings: a row ends at the token that completes the first one in its decoded text
    # (kept; later tokens are masked out) and its text is cut before it
    # (rollout/stops.py `truncate_at_stops`). Empty = end-of-sequence only.
    stop: tuple[str, ...] = ()
    # Multi-turn rollouts with execution feedback (rollout/environment.py): every row samples
    # turn 1; a row whose attempt fails its public tests reads the feedback and samples again,
    # up to `turns` attempts (1 = one attempt, no feedback). The final attempt is scored on the
    # private tests; each turn's tokens are credited with that reward times
    # turn_discount ** (turns after it).
    turns: int = 1
    turn_discount: float = 1.0
    # Feedback text per attempt (compiler errors, the failing test's input / expected / actual
    # output, the exception) is cut to this many characters.
    feedback_max_chars: int = 600
    # The next turn's prompt (raw prompts: T5's encoder input, a decoder's context): {prompt} is
    # the prompt so far, {attempt} the model's answer, {feedback} what the public tests said.
    # Chat prompts append the attempt as the assistant's message and the feedback as the user's.
    feedback_template: str = (
        "{prompt}\n# Previous attempt:\n{attempt}\n# Feedback:\n{feedback}\n# Revised program:\n"
    )

    def __post_init__(self):
        _check(self.max_new_tokens > 0, "rollout.max_new_tokens", "must be > 0")
        _check(self.turns >= 1, "rollout.turns", "must be >= 1 (1 = a single attempt)")
        _check(0 < self.turn_discount <= 1, "rollout.turn_discount", "must be in (0, 1]")
        _check(self.feedback_max_chars > 0, "rollout.feedback_max_chars", "must be > 0")
        _check(
            all(isinstance(s, str) and s for s in self.stop),
            "rollout.stop",
            "every stop string must be a non-empty string",
        )
        _check(self.temperature > 0, "rollout.temperature", "must be > 0")
        _check(
            all(t > 0 for t in self.temperature_cycle),
            "rollout.temperature_cycle",
            "every temperature must be > 0",
        )
        _check(self.top_k >= 0, "rollout.top_k", "must be >= 0 (0 = no top-k)")
        _check(0 < self.top_p <= 1, "rollout.top_p", "must be in (0, 1]")
        _check(self.num_samples >= 1, "rollout.num_samples", "must be >= 1")


@dataclass(frozen=True, kw_only=True)
class RewardConfig:
    """Terminal score = sum of weighted parts (SPEC: compile + ast + dfg, 1:1:1)."""

    compile_weight: float = 1.0
    ast_weight: float = 1.0
    dfg_weight: float = 1.0
    tests_weight: float = 0.0
    timeout_s: float = 4.0
    workers: int = 0  # 0 = number of cores
    link: bool = False
    # Python programs see the standard library only (`python -I -S`). True also gives them this
    # environment's site-packages (numpy, ...) and costs the `site` start-up on every job.
    python_site: bool = False
    # Python call-based / assert-style tests run on persistent sandboxed Python servers (one
    # per reward worker; no interpreter start per job). False: one sandboxed interpreter per
    # job, as before them. Without root and bubblewrap it is per job either way (logged).
    python_server: bool = True
    # JavaScript, PHP, C# and C compile checks go to persistent sandboxed check servers (one
    # warm node / php / mono+mcs / gcc helper per reward worker, same verdicts). False: one
    # sandboxed toolchain process per program, as before them.
    compile_servers: bool = True
    # A sample whose reward raised is masked and saved under <run_dir>/reward_errors/; when
    # more than this share of one batch fails so, the run stops (something is broken).
    max_error_frac: float = 0.25
    # Multi-turn rollouts (rollout.turns > 1): each turn's tokens also get this weight times
    # that attempt's own public-test reward (a shaped per-turn reward; 0 = the final reward only).
    turn_shaping_weight: float = 0.0
    # Memory stays bounded over long runs: LRU caps on the execution results kept (distinct
    # program + tests jobs, ~1 KB each) and on the analysed programs each matching thread
    # keeps; 0 = no cache.
    cache_size: int = 50_000
    match_cache_size: int = 1024
    # Reward plugins: "package.module:function" with TRL's reward-function signature,
    # f(completions, prompts, **columns) -> list[float | None] (columns: id, target, lang,
    # tests, meta). Each batch runs them on host threads beside the execution rewards; their
    # values add to the score with function_weights (empty = 1 each); a None masks the sample
    # like an INFRA_ERROR. See docs/rewards.md.
    functions: tuple[str, ...] = ()
    function_weights: tuple[float, ...] = ()
    # The program in a model's answer (rewards/extract.py): "none" (the answer as it is),
    # "fenced" (the ``` block tagged with the example's language, else any fenced block, else
    # the whole answer), "auto" (fenced when the answer has a fence); `extract_block` picks
    # the first or the last of the candidate blocks. Plugins get the answer as it is.
    extract: Literal["none", "fenced", "auto"] = "none"
    extract_block: Literal["first", "last"] = "last"
    # Where programs are compiled and tested (docs/reward-servers.md): "local" (this host's
    # sandboxed pool), "remote" (`ppocoder sandbox-serve` servers at `endpoints`),
    # "sandbox_fusion" (a SandboxFusion deployment's /run_code at `endpoints`: stdio tests and
    # link checks only). A remote job whose verdict cannot be had after `retries` more tries
    # on other endpoints is an INFRA_ERROR: masked, counted, capped by max_error_frac.
    backend: Literal["local", "remote", "sandbox_fusion"] = "local"
    # Base URLs, e.g. ("http://10.0.0.5:8642",); jobs go to the least busy one.
    endpoints: tuple[str, ...] = ()
    # Requests in flight per endpoint (at most the server's --max-queue, or it answers busy).
    endpoint_concurrency: int = 8
    # Seconds one request may take before it counts as failed and is retried elsewhere.
    request_timeout_s: float = 120.0
    retries: int = 3
    # The environment variable holding the servers' shared token (never in the config file).
    token_env: str = "PPOCODER_SANDBOX_TOKEN"

    def __post_init__(self):
        _check(self.timeout_s > 0, "reward.timeout_s", "must be > 0")
        _check(
            self.backend == "local" or bool(self.endpoints),
            "reward.endpoints",
            f"reward.backend={self.backend} needs at least one endpoint URL",
        )
        for url in self.endpoints:
            _check(
                isinstance(url, str)
                and re.fullmatch(r"https?://[^/\s]+(/[^\s]*)?", url) is not None,
                "reward.endpoints",
                f"{url!r} is not an http(s)://host:port URL",
            )
        _check(self.endpoint_concurrency >= 1, "reward.endpoint_concurrency", "must be >= 1")
        _check(self.request_timeout_s > 0, "reward.request_timeout_s", "must be > 0")
        _check(self.retries >= 0, "reward.retries", "must be >= 0")
        _check(
            not self.function_weights or len(self.function_weights) == len(self.functions),
            "reward.function_weights",
            f"needs one weight per reward.functions entry ({len(self.functions)}), "
            f"got {len(self.function_weights)}",
        )
        for spec in self.functions:
            _check(
                isinstance(spec, str) and spec.count(":") == 1 and all(spec.split(":")),
                "reward.functions",
                f"{spec!r} is not 'package.module:function'",
            )
        _check(self.cache_size >= 0, "reward.cache_size", "must be >= 0 (0 = no cache)")
        _check(self.match_cache_size >= 0, "reward.match_cache_size", "must be >= 0")
        _check(self.workers >= 0, "reward.workers", "must be >= 0")
        _check(0.0 <= self.max_error_frac <= 1.0, "reward.max_error_frac", "must be in [0, 1]")


@dataclass(frozen=True, kw_only=True)
class KLConfig:
    kind: Literal["fixed", "adaptive"] = "adaptive"
    init_coef: float = 0.05
    target: float = 1.0
    horizon: int = 10000
    # "exact": full-vocabulary KL per token (>= 0); "sampled": log pi(a) - log pi_ref(a).
    estimator: Literal["exact", "sampled"] = "exact"
    # Where the KL to the reference goes: "reward" (PPOCoder: -beta * KL_t in the per-token
    # reward, with `estimator`); "loss" (GRPO: beta * k3 per token added to the policy loss and
    # aggregated like it; `estimator` then only sets the logged `kl`); "none" (no KL and no
    # reference forward). init_coef = 0 also skips the reference forward.
    mode: Literal["reward", "loss", "none"] = "reward"
    # mode=loss: multiply each token's k3 by the ratio pi / pi_old (DeepSeek-V3.2's unbiased
    # KL gradient; TRL's use_bias_correction_kl, on by default there). Off = GRPO's plain k3.
    loss_importance_weight: bool = False

    def __post_init__(self):
        _check(self.init_coef >= 0, "kl.init_coef", "must be >= 0")
        _check(self.target > 0, "kl.target", "must be > 0")
        _check(self.horizon > 0, "kl.horizon", "must be > 0")


@dataclass(frozen=True, kw_only=True)
class PPOConfig:
    gamma: float = 1.0
    lam: float = 0.95
    clip_ratio: float = 0.2
    # DAPO's clip-higher: ratio clipped to [1 - clip_low, 1 + clip_high] (0 = clip_ratio).
    clip_low: float = 0.0
    clip_high: float = 0.0
    # Dual-clip PPO (Ye et al. 2020): c > 1 bounds a negative-advantage token's loss by -c A;
    # 0 = off.
    dual_clip: float = 0.0
    value_clip: float = 0.2
    vf_coef: float = 1e-3
    entropy_coef: float = 0.0
    ppo_epochs: int = 4
    num_minibatches: int = 4
    grad_accum_steps: int = 1
    # Advantage whitening; "auto" = what the estimator wants: "batch" for gae / rloo, "none"
    # for grpo / dr_grpo (their own scale, as TRL).
    whiten: Literal["auto", "batch", "sample", "none"] = "auto"
    value_bias_init: Literal["zero", "mean_score"] = "zero"
    value_warmup_iters: int = 0
    # Advantage estimator (ppo/registry.py): "gae" (GAE with the value head, the paper),
    # "rloo" (leave-one-out mean return of the prompt's other rollout.num_samples samples),
    # "grpo" (group z-score), "dr_grpo" (group mean, no std). "" = from `baseline`.
    advantage: str = ""
    # The old name: "value" = gae, "group" = rloo ("" = not set).
    baseline: Literal["", "value", "group"] = ""
    # Policy-loss aggregation (ppo/registry.py): "token_mean" (DAPO; the PPO default),
    # "seq_mean_token_mean" (original GRPO), "seq_mean_token_sum_norm" (Dr. GRPO: token sum /
    # (sequences x loss_agg_max_len); 0 = the response width, the generation budget).
    loss_agg: str = "token_mean"
    loss_agg_max_len: int = 0
    # DAPO's dynamic sampling, masking form: groups whose valid samples all scored the same
    # carry no signal and are left out of the update (counted as `groups_dropped`).
    dynamic_sampling: bool = False
    # The log-probs the PPO ratio starts from (and the values GAE uses): "recompute" runs the
    # policy's teacher-forced pass over the sampled batch (exact in any compute dtype);
    # "sampler" takes the ones the sampler recorded while it drew the tokens (the same
    # parameters, equal up to rounding in fp32; bf16 rounds the two paths differently), which
    # saves one forward pass over the batch per iteration, as TRL and tunix skip it when they
    # train on-policy. The exact KL estimator in the reward needs the policy's pass: kept then.
    old_logprobs: Literal["recompute", "sampler"] = "recompute"

    def __post_init__(self):
        # `advantage` / `loss_agg` name registered functions: they are checked against the
        # registry (which imports jax) when a run starts, `ppo.registry.check_ppo_config`, so
        # that loading a config stays free of jax.
        old = {"value": "gae", "group": "rloo"}.get(self.baseline, "")
        if not self.advantage:
            object.__setattr__(self, "advantage", old or "gae")
        elif old and old != self.advantage:
            raise UserError(
                f"config key 'ppo.baseline': {self.baseline!r} is the old name of "
                f"ppo.advantage={old}, which contradicts ppo.advantage={self.advantage}; set "
                "only ppo.advantage"
            )
        _check(0 <= self.gamma <= 1, "ppo.gamma", "must be in [0, 1]")
        _check(0 <= self.lam <= 1, "ppo.lam", "must be in [0, 1]")
        _check(self.clip_ratio > 0, "ppo.clip_ratio", "must be > 0")
        _check(0 <= self.clip_low < 1, "ppo.clip_low", "must be in [0, 1) (0 = clip_ratio)")
        _check(self.clip_high >= 0, "ppo.clip_high", "must be >= 0 (0 = clip_ratio)")
        _check(self.dual_clip == 0 or self.dual_clip > 1, "ppo.dual_clip", "must be 0 (off) or > 1")
        _check(self.loss_agg_max_len >= 0, "ppo.loss_agg_max_len", "must be >= 0")
        _check(self.value_clip > 0, "ppo.value_clip", "must be > 0")
        _check(self.vf_coef >= 0, "ppo.vf_coef", "must be >= 0")
        _check(self.ppo_epochs >= 1, "ppo.ppo_epochs", "must be >= 1")
        _check(self.num_minibatches >= 1, "ppo.num_minibatches", "must be >= 1")
        _check(self.grad_accum_steps >= 1, "ppo.grad_accum_steps", "must be >= 1")
        _check(self.value_warmup_iters >= 0, "ppo.value_warmup_iters", "must be >= 0")

    @property
    def clip_range(self) -> tuple[float, float]:
        """(low, high): the ratio is clipped to [1 - low, 1 + high]."""
        return (self.clip_low or self.clip_ratio, self.clip_high or self.clip_ratio)


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    learning_rate: float = 1e-5
    weight_decay: float = 0.01
    eps: float = 1e-8
    b1: float = 0.9
    b2: float = 0.999
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = 0
    max_grad_norm: float = 0.0  # 0 = no clipping
    # The value head's step size relative to learning_rate. Adam makes vf_coef irrelevant to
    # the head's own step (it only weighs the value loss against the policy loss in the shared
    # decoder), so at a policy-sized lr a freshly initialised head barely moves.
    value_head_lr_scale: float = 1.0

    def __post_init__(self):
        _check(self.learning_rate > 0, "optim.learning_rate", "must be > 0")
        _check(self.weight_decay >= 0, "optim.weight_decay", "must be >= 0")
        _check(self.warmup_steps >= 0, "optim.warmup_steps", "must be >= 0")
        _check(self.max_grad_norm >= 0, "optim.max_grad_norm", "must be >= 0")
        _check(self.value_head_lr_scale > 0, "optim.value_head_lr_scale", "must be > 0")


@dataclass(frozen=True, kw_only=True)
class MeshConfig:
    """Device mesh (data, fsdp, tensor); -1 in one axis = all remaining devices."""

    data: int = -1
    fsdp: int = 1
    tensor: int = 1
    # Multi-host: call jax.distributed.initialize (arguments from the environment on TPU/SLURM).
    distributed: bool = False
    coordinator_address: str = ""
    num_processes: int = 0
    process_id: int = -1

    def __post_init__(self):
        axes = (self.data, self.fsdp, self.tensor)
        _check(all(a == -1 or a >= 1 for a in axes), "mesh", "axis sizes must be >= 1 or -1")
        _check(sum(a == -1 for a in axes) <= 1, "mesh", "at most one axis may be -1")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """The outer loop shared by sft and train (PPO)."""

    run_dir: str = "runs/default"
    seed: int = 0
    steps: int = 100
    batch_size: int = 32
    save_every: int = 50
    keep_checkpoints: int = 3
    log_every: int = 1
    wandb: bool = False
    tensorboard: bool = True
    # PPO: sample batch k+1 while batch k is scored and learned from (the device samples and the
    # reward pool scores at the same time). One step off-policy: batch k+1 comes from the
    # parameters before update k; its old log-probs, values, reference log-probs and KL are
    # computed with those sampling parameters, so the PPO ratio starts from the behaviour policy
    # and its clip bounds the extra step. Faster when scoring costs about as much as the device
    # work (docs/performance.md); checkpoints keep the sampled batch, so resume stays exact.
    overlap_rollouts: bool = False
    # PPO: an optimizer step whose loss or gradient is not finite is skipped (never applied;
    # counted as skipped_updates); this many skipped steps in a row end the run with an error.
    max_skipped_updates: int = 3

    def __post_init__(self):
        _check(self.steps >= 0, "train.steps", "must be >= 0")
        _check(self.max_skipped_updates >= 1, "train.max_skipped_updates", "must be >= 1")
        _check(self.batch_size >= 1, "train.batch_size", "must be >= 1")
        _check(self.save_every >= 1, "train.save_every", "must be >= 1")
        _check(self.keep_checkpoints >= 1, "train.keep_checkpoints", "must be >= 1")


@dataclass(frozen=True, kw_only=True)
class SFTConfig:
    steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    label_smoothing: float = 0.0
    # Source / target lengths of a training or validation batch are rounded up to one of these
    # buckets (capped at data.max_source_length / max_target_length) to bound recompilation;
    # the presets repeat their rollout.length_buckets here.
    length_buckets: tuple[int, ...] = (32, 64, 128, 256, 400, 512)
    # Revision examples added to the SFT corpus (multi-turn warm start, docs/multiturn.md): a
    # plausible buggy attempt at a training problem, the sandbox's feedback on its public
    # tests through rollout.feedback_template (or the chat template), and the correct program
    # as the target. Needs problems that carry bug variants (data.task=synthesis_demo). 0: none.
    revision_examples: int = 0

    def __post_init__(self):
        _check(self.steps >= 0, "sft.steps", "must be >= 0")
        _check(self.revision_examples >= 0, "sft.revision_examples", "must be >= 0")
        _check(self.batch_size >= 1, "sft.batch_size", "must be >= 1")
        _check(self.learning_rate > 0, "sft.learning_rate", "must be > 0")


@dataclass(frozen=True, kw_only=True)
class PretrainConfig:
    """The embedded starting model's pretraining (model.init: pretrained): Python functions of
    the standard library's training-split modules, never a function the completion task
    evaluates on or trains PPO on; span corruption (T5) or causal LM (decoder)."""

    steps: int = 1000
    batch_size: int = 64
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    # Functions are cut into windows of at most this many tokens.
    max_length: int = 256
    # T5 span corruption (CodeT5's): the share of a window's tokens masked and the mean span
    # length; each span becomes one sentinel token in the input, the target lists the spans.
    noise_density: float = 0.15
    mean_span_length: float = 3.0
    seed: int = 0

    def __post_init__(self):
        _check(self.steps >= 1, "pretrain.steps", "must be >= 1")
        _check(self.batch_size >= 1, "pretrain.batch_size", "must be >= 1")
        _check(self.learning_rate > 0, "pretrain.learning_rate", "must be > 0")
        _check(self.warmup_steps >= 0, "pretrain.warmup_steps", "must be >= 0")
        _check(self.max_length >= 16, "pretrain.max_length", "must be >= 16")
        _check(0 < self.noise_density < 0.5, "pretrain.noise_density", "must be in (0, 0.5)")
        _check(self.mean_span_length >= 1, "pretrain.mean_span_length", "must be >= 1")


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    num_samples: int = 1  # n samples per problem for pass@k
    ks: tuple[int, ...] = (1,)
    greedy: bool = True
    batch_size: int = 32
    # Sampled evaluation's temperature, kept apart from `rollout.temperature` (how training
    # explores) so that a preset drawing its rollouts cooler still reports pass@k at T=1 (the
    # paper's); top-k / top-p are the rollout's.
    temperature: float = 1.0

    def __post_init__(self):
        _check(self.num_samples >= 1, "eval.num_samples", "must be >= 1")
        _check(self.temperature > 0, "eval.temperature", "must be > 0")
        _check(all(k >= 1 for k in self.ks), "eval.ks", "every k must be >= 1")


@dataclass(frozen=True, kw_only=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    kl: KLConfig = field(default_factory=KLConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# ---------------------------------------------------------------------------------------------
# dict <-> dataclass with validation


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation):
        _check(isinstance(value, dict), key, f"expected a mapping, got {type(value).__name__}")
        return from_dict(annotation, value, prefix=key + ".")
    if origin is Literal:
        _check(value in args, key, f"must be one of {list(args)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return _coerce(value, arg, key)
            except UserError:
                continue
        raise UserError(f"config key {key!r}: {value!r} does not match {annotation}")
    if origin is tuple:
        _check(isinstance(value, (list, tuple)), key, f"expected a list, got {value!r}")
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, key) for v in value)
    if annotation is bool:
        _check(isinstance(value, bool), key, f"expected true/false, got {value!r}")
        return value
    if annotation is int:
        _check(
            isinstance(value, int) and not isinstance(value, bool),
            key,
            f"expected an integer, got {value!r}",
        )
        return value
    if annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        _check(ok, key, f"expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        _check(isinstance(value, str), key, f"expected a string, got {value!r}")
        return value
    return value


# Keys that nothing read and were removed; a saved config.yaml may still hold them.
_REMOVED_KEYS = {"train.eval_every", "train.stale_rollouts"}


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    data = {k: v for k, v in data.items() if prefix + k not in _REMOVED_KEYS}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(
            f"unknown config key {prefix + unknown[0]!r} (known: {', '.join(sorted(names))})"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:  # pragma: no cover - all fields have defaults
        raise UserError(f"config section {prefix or '<root>'}: {err}") from err


def to_dict(cfg: Any) -> dict:
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def _deep_merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = _deep_merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def parse_override(text: str) -> dict:
    """'ppo.clip_ratio=0.1' -> {'ppo': {'clip_ratio': 0.1}} (value parsed as YAML)."""
    if "=" not in text:
        raise UserError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise UserError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise UserError(f"override {text!r}: cannot parse value: {err}") from err
    if isinstance(value, str):
        value = _number_or_text(value)
    node: dict = {}
    cursor = node
    parts = key.split(".")
    for part in parts[:-1]:
        cursor[part] = {}
        cursor = cursor[part]
    cursor[parts[-1]] = value
    return node


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _number_or_text(text: str):
    """YAML 1.1 reads `1e-4` as a string; on the command line it means a number."""
    return float(text) if _NUMBER.match(text.strip()) else text


def resolve_preset(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise UserError(f"config file {str(path)!r} not found")
    return path


def load_yaml(path: str | os.PathLike) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        raise UserError(f"config file {str(path)!r} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {str(path)!r} must hold a mapping at top level")
    # `base: other_preset` lets presets inherit from each other.
    base = data.pop("base", None)
    if base:
        data = _deep_merge(load_yaml(resolve_preset(base)), data)
    return data


def load_config(preset: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    data: dict = {}
    if preset:
        data = load_yaml(resolve_preset(preset))
    for text in overrides:
        data = _deep_merge(data, parse_override(text))
    return from_dict(Config, data)


def save_config(cfg: Config, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    os.replace(tmp, path)


def add_config_arguments(parser) -> None:
    """Standard `--config PRESET` and trailing `key=value` overrides for job commands."""
    parser.add_argument("--config", default=None, help="preset name in configs/ or a YAML path")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
