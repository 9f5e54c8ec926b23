"""How bright true enhancing tumor is on T1c: the evidence behind ``relabel_unenhancing``.

For each labelled case (training preprocessing on a ``--spacing-mm`` grid, ``prepare_case``):
the fraction of its reference ET voxels that are brighter on T1c than the 95th percentile of
the brain outside the tumor (``lib.postprocessing.enhancing_fractions``, the measure the served
postprocessing applies to predicted ET), pooled over the case's ET and per component. A
percentile is unchanged by any monotone intensity mapping, so no model normalisation is
needed. Run it on cases that are not cross-validated to choose the threshold
(``ET_MIN_ENHANCING_FRACTION``); the cross-validated ones may only be looked at afterwards.

    .venv/bin/python experiments/enhancing_fraction.py --group extra=data/extra --group generated=data/synth6v2 \\
        --cache data/fp-cache --out experiments/results/enhancing_fraction.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import provenance, relative  # noqa: E402

from lib.atomic import write_json  # noqa: E402
from lib.brats import ET, SEQUENCES, labelled_cases  # noqa: E402
from lib.postprocessing import enhancing_fractions  # noqa: E402
from lib.trainers.data import prepare_case  # noqa: E402


def case_row(case: dict[str, str], cache: Path | None, spacing_mm: float, min_component_ml: float) -> dict[str, Any]:
    """ET volume (mL), pooled bright fraction and per-component (mL, fraction) of one case."""
    prepared = prepare_case(case, cache, spacing_mm)
    label, brain = prepared.label[0], prepared.brain_mask[0]
    components, fractions = enhancing_fractions(label, prepared.image[SEQUENCES.index("t1c")], brain)
    voxel_ml = spacing_mm ** 3 / 1000.0
    sizes = np.bincount(components.ravel(), minlength=len(fractions) + 1)[1:]
    pooled = float((fractions * sizes).sum() / sizes.sum()) if sizes.sum() else None
    return {"et_ml": round(float((label == ET).sum()) * voxel_ml, 2),
            "bright_fraction": None if pooled is None else round(pooled, 3),
            "components": sorted(([round(float(n) * voxel_ml, 2), round(float(f), 3)]
                                  for n, f in zip(sizes, fractions, strict=True)
                                  if n * voxel_ml >= min_component_ml), reverse=True)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--group", action="append", required=True, help="NAME=FOLDER of labelled cases")
    ap.add_argument("--cache", type=Path, help="cache of preprocessed cases")
    ap.add_argument("--spacing-mm", type=float, default=2.0, help="working grid (the served model's is 2 mm)")
    ap.add_argument("--min-component-ml", type=float, default=0.3, help="components listed from this size")
    ap.add_argument("--out", type=Path, help="JSON report")
    args = ap.parse_args(argv)

    report: dict[str, Any] = {"provenance": provenance(), "spacing_mm": args.spacing_mm, "groups": {}}
    for spec in args.group:
        name, _, folder = spec.partition("=")
        rows = {c["case_id"]: case_row(c, args.cache, args.spacing_mm, args.min_component_ml)
                for c in labelled_cases(Path(folder))}
        for case_id, row in rows.items():
            print(name, case_id, json.dumps(row), flush=True)
        pooled = [r["bright_fraction"] for r in rows.values() if r["bright_fraction"] is not None and r["et_ml"] >= 1.0]
        summary = {"cases_with_et": len(pooled), "min": min(pooled, default=None), "max": max(pooled, default=None)}
        print(name, "cases with >= 1 mL ET:", json.dumps(summary), flush=True)
        report["groups"][name] = {"folder": relative(folder), "summary": summary, "cases": rows}
    if args.out:
        write_json(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
