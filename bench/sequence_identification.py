"""Sequence identification on the real-world naming table of tests/series_naming.py.

Runs the study-level classifier (``identify_sequences``) over every study of the table and
counts, per vendor and overall:

* series: identified correctly (the decision is what the series is), refused (left as an
  undecided T1 or as "other" although it is one of t1n/t1c/t2w/t2f; with the reason) or WRONGLY
  identified (taken for another sequence, or a non-sequence taken for one);
* studies: identified correctly (the four expected series), refused (with the problem and why
  the table expects it) or WRONGLY identified (a series chosen that is not that sequence, or a
  study segmented that should have been refused).

    .venv/bin/python bench/sequence_identification.py --out bench/results/sequence_identification.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import provenance  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))

from lib.brats import SEQUENCES
from lib.dicom.sequences import RULES, identify_sequences

from series_naming import STUDIES, VENDORS, Refused, Study, series_of, uid

OUTCOMES = ("right", "refused", "wrong")


def series_outcome(kind: str, truth: str) -> str:
    """right, refused or wrong for one series decision against what the series is."""
    if kind == truth:
        return "right"
    if truth in SEQUENCES and kind not in SEQUENCES:
        return "refused"
    return "wrong"


def evaluate(study: Study) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-series and study records of one study."""
    found = identify_sequences(series_of(study))
    truth = {uid(study, n): r.truth for n, r in enumerate(study.rows, start=1)}
    series = []
    for n, r in enumerate(study.rows, start=1):
        decision = found.decisions[uid(study, n)]
        series.append({"study": study.name, "vendor": study.vendor, "series_number": n, "description": r.description,
                       "truth": r.truth, "decision": decision.kind, "reason": decision.reason,
                       "outcome": series_outcome(decision.kind, r.truth), "why_undecidable": r.why or None})
    chosen_wrongly = {seq: chosen for seq, chosen in found.series.items() if truth[chosen] != seq}
    expected = study.outcome
    if chosen_wrongly:
        outcome = "wrong"
    elif found.problem is None:
        right = not isinstance(expected, Refused) and found.series == {s: uid(study, n) for s, n in expected.items()}
        outcome = "right" if right else "wrong"
    else:
        outcome = "refused"
    record = {"study": study.name, "vendor": study.vendor, "outcome": outcome, "problem": found.problem,
              "chosen": {seq: int(chosen.rsplit(".", 1)[1]) for seq, chosen in found.series.items()},
              "expected": expected._asdict() if isinstance(expected, Refused) else expected,
              "refusal_category": (expected.category if isinstance(expected, Refused) else "unexpected")
              if outcome == "refused" else None}
    return series, record


def tally(records: list[dict[str, Any]]) -> dict[str, Any]:
    counts = Counter(r["outcome"] for r in records)
    total = len(records)
    return {"total": total, **{k: counts[k] for k in OUTCOMES},
            **{f"{k}_share": round(counts[k] / total, 4) if total else None for k in OUTCOMES}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "sequence_identification.json")
    args = parser.parse_args()

    series: list[dict[str, Any]] = []
    studies: list[dict[str, Any]] = []
    for study in STUDIES:
        s, record = evaluate(study)
        series += s
        studies.append(record)

    groups = (*VENDORS, "overall")
    by = {g: {"series": tally([r for r in series if g in ("overall", r["vendor"])]),
              "studies": tally([r for r in studies if g in ("overall", r["vendor"])])} for g in groups}
    refusal_categories = Counter(r["refusal_category"] for r in studies if r["outcome"] == "refused")
    result = {
        "provenance": provenance(),
        "table": "tests/series_naming.py",
        "rules": [rule.name for rule in RULES],
        "by_vendor": by,
        "refused_studies_by_category": dict(sorted(refusal_categories.items())),
        "refused_series": [r for r in series if r["outcome"] == "refused"],
        "wrong_series": [r for r in series if r["outcome"] == "wrong"],
        "refused_studies": [r for r in studies if r["outcome"] == "refused"],
        "wrong_studies": [r for r in studies if r["outcome"] == "wrong"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")

    def cells(t: dict[str, Any]) -> str:
        return " | ".join(f"{t[k]} ({t[f'{k}_share']:.0%})" for k in OUTCOMES)

    print("| vendor | series | right | refused | wrong | studies | right | refused | wrong |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for g in groups:
        s, st = by[g]["series"], by[g]["studies"]
        print(f"| {g} | {s['total']} | {cells(s)} | {st['total']} | {cells(st)} |")
    print("\nrefused studies:")
    for r in result["refused_studies"]:
        print(f"  [{r['refusal_category']}] {r['study']}: {r['problem']}")
    print("\nrefused series:")
    for r in result["refused_series"]:
        print(f"  {r['study'].split()[0]}.{r['series_number']} {r['description']!r} ({r['truth']} -> {r['decision']}): "
              f"{r['why_undecidable'] or r['reason']}")
    for r in result["wrong_series"] + result["wrong_studies"]:
        print(f"  WRONG: {r}")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
