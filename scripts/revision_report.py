"""What the revisions of a multi-turn evaluation did, from `ppocoder eval --samples FILE`.

    .venv/bin/python scripts/revision_report.py runs/mt/test_samples.jsonl [more.jsonl ...]

For each file, the samples whose first attempt read feedback (its public tests failed), split
by the first attempt's verdict on the private tests, and what the revision did with it:
repeated the previous attempt character for character, changed it and still failed, or passed.
A revision that repeats its attempt read nothing from the feedback (greedy decoding without
feedback would do the same).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path


def revision_outcomes(records: list[dict]) -> dict:
    """-> {"samples", "revised", "by_verdict": {first verdict: Counter(outcome)}} where the
    outcome of a revised sample is "repeated", "changed" (and failed) or "fixed"."""
    by_verdict: dict[str, Counter] = defaultdict(Counter)
    revised = 0
    for r in records:
        if "attempts" not in r:
            raise ValueError(
                f"sample {r.get('id')!r} has no attempts: the file is from a single-turn "
                "evaluation (rollout.turns=1)"
            )
        attempts = r["attempts"]
        if len(attempts) < 2:
            continue
        revised += 1
        if r["passed"]:
            outcome = "fixed"
        elif all(a == attempts[0] for a in attempts[1:]):
            outcome = "repeated"
        else:
            outcome = "changed"
        by_verdict[r["first_verdict"]][outcome] += 1
    return {"samples": len(records), "revised": revised, "by_verdict": dict(by_verdict)}


def table(name: str, report: dict) -> str:
    lines = [
        f"{name}: {report['samples']} samples, {report['revised']} revised",
        "",
        "| first verdict | revised | repeated | changed, failed | fixed |",
        "|---|---|---|---|---|",
    ]
    rows = sorted(report["by_verdict"].items(), key=lambda kv: -sum(kv[1].values()))
    total: Counter = Counter()
    for verdict, counts in rows + [("all", None)]:
        counts = total if counts is None else counts
        if verdict != "all":
            total.update(counts)
        n = sum(counts.values())
        cells = [f"{counts[o]} ({100 * counts[o] / max(n, 1):.1f}%)" for o in OUTCOMES]
        lines.append(f"| {verdict} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


OUTCOMES = ("repeated", "changed", "fixed")


def read_records(path: Path) -> list[dict]:
    from ppocoder_jax.data.io import jsonl_records

    return [record for _, record in jsonl_records(path, "samples file")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="`ppocoder eval --samples` output")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = parser.parse_args(argv)
    reports = {}
    from ppocoder_jax.errors import UserError

    for path in args.files:
        try:
            reports[str(path)] = revision_outcomes(read_records(path))
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except (ValueError, KeyError) as err:
            print(f"error: {path}: {err}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        print("\n\n".join(table(name, report) for name, report in reports.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
