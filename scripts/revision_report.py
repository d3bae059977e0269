"""What the revisions of a multi-turn evaluation did, from `ppocoder eval --samples FILE`.

    .venv/bin/python scripts/revision_report.py runs/mt/test_samples.jsonl [more.jsonl ...]

For each file, the samples whose first attempt read feedback (its public tests failed), split
by the first attempt's verdict on the private tests, and what the revision did with it:
repeated the previous attempt character for character, changed it and still failed, or passed.
A revision that repeats its attempt read nothing from the feedback (greedy decoding without
feedback would do the same). Failing first attempts that passed the public tests are never
revised; their number is said too.

    .venv/bin/python scripts/revision_report.py --pair runs/sft/samples.jsonl runs/ppo/samples.jsonl

compares two models on the same problems (first sample of each): of the problems both revised,
how many each fixed; of those only the first model revised, how many it fixed and how many the
second model's first attempt passed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

OUTCOMES = ("repeated", "changed", "fixed")


def _revised(record: dict) -> bool:
    if "attempts" not in record:
        raise ValueError(
            f"sample {record.get('id')!r} has no attempts: the file is from a single-turn "
            "evaluation (rollout.turns=1)"
        )
    return len(record["attempts"]) > 1


def revision_outcomes(records: list[dict]) -> dict:
    """-> {"samples", "revised", "unrevised_failures", "by_verdict": {first verdict:
    Counter(outcome)}} where the outcome of a revised sample is "repeated", "changed" (and
    failed) or "fixed", and unrevised_failures counts the failing first attempts that passed
    the public tests."""
    by_verdict: dict[str, Counter] = defaultdict(Counter)
    unrevised_failures = 0
    for r in records:
        if not _revised(r):
            unrevised_failures += r["first_verdict"] != "PASS"
            continue
        attempts = r["attempts"]
        if r["passed"]:
            outcome = "fixed"
        elif all(a == attempts[0] for a in attempts[1:]):
            outcome = "repeated"
        else:
            outcome = "changed"
        by_verdict[r["first_verdict"]][outcome] += 1
    revised = sum(sum(c.values()) for c in by_verdict.values())
    return {
        "samples": len(records),
        "revised": revised,
        "unrevised_failures": unrevised_failures,
        "by_verdict": dict(by_verdict),
    }


def paired_outcomes(first: list[dict], second: list[dict]) -> dict:
    """Two models' records on the same problems (sample 0 of each) -> {"both": problems both
    revised, "fixed_first" / "fixed_second": of those, fixed by each; "first_only": problems
    only the first model revised, "first_only_fixed": fixed by it, "first_only_second_passed":
    passed by the second model's first attempt}."""
    a = {r["id"]: r for r in first if r["sample"] == 0}
    b = {r["id"]: r for r in second if r["sample"] == 0}
    if a.keys() != b.keys():
        raise ValueError("the two files hold different problems")
    both = [i for i in a if _revised(a[i]) and _revised(b[i])]
    only = [i for i in a if _revised(a[i]) and not _revised(b[i])]
    return {
        "both": len(both),
        "fixed_first": sum(a[i]["passed"] for i in both),
        "fixed_second": sum(b[i]["passed"] for i in both),
        "first_only": len(only),
        "first_only_fixed": sum(a[i]["passed"] for i in only),
        "first_only_second_passed": sum(b[i]["passed"] for i in only),
    }


def table(name: str, report: dict) -> str:
    lines = [
        f"{name}: {report['samples']} samples, {report['revised']} revised, "
        f"{report['unrevised_failures']} failing first attempts never revised",
        "",
        "| first verdict | revised | repeated | changed, failed | fixed |",
        "|---|---|---|---|---|",
    ]
    rows = sorted(report["by_verdict"].items(), key=lambda kv: -sum(kv[1].values()))
    total = sum((counts for _, counts in rows), Counter())
    for verdict, counts in [*rows, ("all", total)]:
        n = sum(counts.values())
        cells = [f"{counts[o]} ({100 * counts[o] / max(n, 1):.1f}%)" for o in OUTCOMES]
        lines.append(f"| {verdict} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(first: str, second: str, p: dict) -> str:
    return "\n".join([
        f"first: {first}", f"second: {second}", "",
        "| revised by both | fixed by first | fixed by second | revised by first only "
        "| fixed by first | passed by second's first attempt |",
        "|---|---|---|---|---|---|",
        f"| {p['both']} | {p['fixed_first']} | {p['fixed_second']} | {p['first_only']} "
        f"| {p['first_only_fixed']} | {p['first_only_second_passed']} |",
    ])  # fmt: skip


def read_records(path: Path) -> list[dict]:
    from ppocoder_jax.data.io import jsonl_records

    return [record for _, record in jsonl_records(path, "samples file")]


def main(argv=None) -> int:
    from ppocoder_jax.errors import UserError

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="`ppocoder eval --samples` output")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    parser.add_argument(
        "--pair", action="store_true", help="compare two files' models on the same problems"
    )
    args = parser.parse_args(argv)
    if args.pair and len(args.files) != 2:
        print("error: --pair takes exactly two files", file=sys.stderr)
        return 2
    reports = {}
    try:
        records = [(str(path), read_records(path)) for path in args.files]
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    where = " and ".join(name for name, _ in records)  # the file(s) an error below is about
    try:
        if args.pair:
            (first, a), (second, b) = records
            reports = {"first": first, "second": second, **paired_outcomes(a, b)}
        else:
            for name, rs in records:
                where = name
                reports[name] = revision_outcomes(rs)
    except (ValueError, KeyError) as err:
        print(f"error: {where}: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(reports, indent=2))
    elif args.pair:
        print(paired_table(reports["first"], reports["second"], reports))
    else:
        print("\n\n".join(table(name, report) for name, report in reports.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
