"""`ppocoder generate`: sample programs from a model (a Hugging Face directory or our checkpoint).

    ppocoder generate --model DIR (--prompt TEXT [--prompt TEXT ...] | --prompt-file F)
        [--num-samples N] [--max-new-tokens N] [--greedy | --temperature T --top-k K --top-p P]
        [--seed S] [--dtype float32|bfloat16] [--tokenizer DIR] [--json]
        [--extract [fenced|auto|none] [--extract-block first|last] [--lang LANG]]

--prompt-file: a `.jsonl` file holds one prompt per line (a JSON string or an object with a
"prompt" key); any other file is one prompt (its whole text). With --json, one JSON object per
sample and line: prompt_index, sample_index, text, token_ids (generated ids without `</s>`),
finished (emitted `</s>`), logprob (sum of the policy log-probs, `</s>` included).
Sampling defaults come from the rollout config (temperature 1, top-k 5, top-p 1).

--extract prints the program in each answer instead of the answer (the reward's
`reward.extract` rule, rewards/extract.py: the fenced ``` block tagged --lang, else any fenced
block, else the whole answer; the last block unless --extract-block first); `--extract` alone
is `auto`. With --json the record keeps "text" and adds "code", the extracted program.
"""

from __future__ import annotations

import json
from pathlib import Path

from ppocoder_jax.config import RolloutConfig
from ppocoder_jax.errors import UserError

DEFAULT_MAX_NEW_TOKENS = 128


def add_arguments(parser) -> None:
    defaults = RolloutConfig()
    parser.add_argument(
        "--model",
        required=True,
        help="Hugging Face directory (T5, Llama, Qwen2/3) or our checkpoint",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", action="append", help="prompt text (repeat for several)")
    source.add_argument("--prompt-file", help="a text file (one prompt) or .jsonl (one per line)")
    parser.add_argument("--num-samples", type=int, default=1, help="samples per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    parser.add_argument(
        "--max-source-length", type=int, default=512, help="prompt truncation (keeps the end)"
    )
    parser.add_argument("--greedy", action="store_true", help="argmax decoding")
    parser.add_argument("--temperature", type=float, default=None, help=f"{defaults.temperature}")
    parser.add_argument("--top-k", type=int, default=None, help=f"0 = off ({defaults.top_k})")
    parser.add_argument("--top-p", type=float, default=None, help=f"1 = off ({defaults.top_p})")
    parser.add_argument(
        "--draw",
        choices=("cdf", "gumbel"),
        default=defaults.draw,
        help=f"how tokens are drawn (rollout.draw; {defaults.draw})",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--tokenizer", default=None, help="tokenizer directory (default: model's)")
    parser.add_argument("--json", action="store_true", help="one JSON object per sample")
    parser.add_argument(
        "--stop",
        action="append",
        default=[],
        help="a stop string (repeat for several): the text ends before it (rollout.stop)",
    )
    parser.add_argument(
        "--extract",
        nargs="?",
        const="auto",
        default="none",
        choices=("none", "fenced", "auto"),
        help="print the program in a Markdown answer (fenced ``` block; alone: auto)",
    )
    parser.add_argument(
        "--extract-block",
        choices=("first", "last"),
        default="last",
        help="which fenced block when several (default: last)",
    )
    parser.add_argument(
        "--lang",
        default=None,
        help="--extract prefers blocks tagged with this language (python, cpp, java, ...)",
    )


def read_prompts(args) -> list[str]:
    if args.prompt is not None:
        prompts = list(args.prompt)
        source = "--prompt"
    else:
        path = Path(args.prompt_file)
        source = str(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise UserError(f"{path}: prompt file not found") from None
        except (OSError, UnicodeDecodeError) as err:
            raise UserError(f"{path}: cannot read the prompt file ({err})") from None
        if path.suffix == ".jsonl":
            prompts = []
            for i, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as err:
                    raise UserError(f"{path}:{i}: not valid JSON ({err})") from None
                if isinstance(item, dict):
                    item = item.get("prompt")
                if not isinstance(item, str):
                    raise UserError(f"{path}:{i}: expected a string or an object with 'prompt'")
                prompts.append(item)
        else:
            prompts = [text]
    if not prompts or any(not p.strip() for p in prompts):
        raise UserError(f"{source}: empty prompt")
    return prompts


def sampling_params(args):
    from ppocoder_jax.rollout.sampler import SamplingParams

    explicit = [args.temperature is not None, args.top_k is not None, args.top_p is not None]
    if args.greedy:
        if any(explicit):
            raise UserError("--greedy cannot be combined with --temperature/--top-k/--top-p")
        return SamplingParams(greedy=True)
    defaults = RolloutConfig()
    temperature = defaults.temperature if args.temperature is None else args.temperature
    top_k = defaults.top_k if args.top_k is None else args.top_k
    top_p = defaults.top_p if args.top_p is None else args.top_p
    try:
        draw = getattr(args, "draw", defaults.draw)
        return SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, draw=draw)
    except ValueError as err:
        raise UserError(f"sampling: {err}") from None


def run(args) -> int:
    if args.num_samples < 1:
        raise UserError("--num-samples must be >= 1")
    if args.max_new_tokens < 1:
        raise UserError("--max-new-tokens must be >= 1")
    if args.max_source_length < 1:
        raise UserError("--max-source-length must be >= 1")
    sampling = sampling_params(args)
    prompts = read_prompts(args)

    import jax
    import jax.numpy as jnp
    import numpy as np

    from ppocoder_jax.model.store import load_model
    from ppocoder_jax.rollout.bucketed_sampler import Sampler, generated_ids

    params, cfg, tokenizer = load_model(args.model)
    if args.tokenizer:
        from ppocoder_jax.model.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(args.tokenizer)
    if tokenizer is None:
        raise UserError(f"{args.model}: the model has no tokenizer files; pass --tokenizer DIR")
    dtype = jnp.bfloat16 if args.dtype == "bfloat16" else jnp.float32
    if any(not stop for stop in args.stop):
        raise UserError("--stop: a stop string must not be empty")
    sampler = Sampler(
        cfg,
        RolloutConfig(stop=tuple(args.stop)),
        dtype=dtype,
        batch_multiple=1,
        max_source_length=args.max_source_length,
    )
    out, texts = sampler.generate(
        params,
        tokenizer,
        prompts,
        jax.random.PRNGKey(args.seed),
        sampling=sampling,
        max_new_tokens=args.max_new_tokens,
        num_samples=args.num_samples,
    )
    token_mask = np.asarray(out.token_mask)
    if args.stop:  # rows end at their first stop string, as training rollouts do
        token_mask, texts = sampler.cut_at_stops(tokenizer, np.asarray(out.tokens), token_mask)
    ids = generated_ids(out.tokens, token_mask, sampler.policy.eos_ids)
    codes = [extracted(args, text) for text in texts]
    lengths = np.asarray(out.lengths)
    logprob = np.asarray(out.logprobs).sum(axis=1)
    n = args.num_samples
    for row, text in enumerate(texts):
        i, j = divmod(row, n)
        if args.json:
            record = {
                "prompt_index": i,
                "sample_index": j,
                "text": text,
                "token_ids": ids[row],
                "finished": len(ids[row]) < int(lengths[row])
                or bool(args.stop)
                and int(token_mask[row].sum()) < int(lengths[row]),
                "logprob": float(logprob[row]),
            }
            if args.extract != "none":
                record["code"] = codes[row]
            print(json.dumps(record), flush=True)
        else:
            print(f"=== prompt {i} sample {j} ===")
            print(codes[row], flush=True)
    return 0


def extracted(args, text: str) -> str:
    """The sample's text as printed: the program in it under --extract (the reward's rule)."""
    from ppocoder_jax.rewards.extract import extract_code

    return extract_code(text, args.lang, args.extract, args.extract_block)
