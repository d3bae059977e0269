"""Paper table: MBPP zero-shot pass@k of the APPS-trained model (no training on MBPP).

    python scripts/paper/mbpp.py --data MBPP/mbpp.jsonl \
        --model runs/paper/apps/ppo/final_model --out runs/paper/mbpp [--sample-chunk 100]

Runs scripts/paper/passk.py on MBPP's test problems (task ids 11-510) with eval.num_samples
samples each (configs/paper_mbpp.yaml). The SPEC lists no MBPP numbers: none are printed.
"""

from __future__ import annotations

from pathlib import Path

from _common import (
    base_parser,
    init_distributed,
    pass_k_eval,
    pct,
    print_table,
    setup,
    stage_overrides,
)

PRESET = "paper_mbpp"
SMOKE_EVAL = ["eval.num_samples=4", "eval.ks=[1,2,4]"]


def main(argv=None) -> int:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--sample-chunk", type=int, default=100, help="samples per prompt per call")
    args = p.parse_args(argv)
    setup(args)
    out = Path(args.out).resolve()
    ov = stage_overrides(args, [f"data.path={Path(args.data).resolve()}"], smoke_extra=SMOKE_EVAL)
    chunk = 2 if args.smoke else args.sample_chunk
    init_distributed(PRESET, ov)
    run_dir = out / "eval"
    result = pass_k_eval(args, PRESET, Path(args.model).resolve(), run_dir, ov, chunk)
    if args.dry_run:
        return 0
    rows = [[f"pass@{k}", pct(result["all"].get(f"pass@{k}")), "-"] for k in result["ks"]]
    rows.append(["compile rate", pct(result["all"]["compile_rate"]), "-"])
    text = print_table(
        f"MBPP zero-shot, {result['all']['num_problems']} test problems, "
        f"n = {result['num_samples']} samples each, in %",
        ["", "ours", "paper"],
        rows,
        ["paper: no MBPP numbers in the SPEC; check the paper before quoting any"],
    )
    (out / "table.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
