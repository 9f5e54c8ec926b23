"""Are the false positives low in the head a bias field? N4 at inference, out-of-fold.

Each real case goes through the model of the fold that held it out (``--folds``), on the model's
grid, twice: as served (Nyúl + z-score) and with N4 bias-field correction of every sequence
first (``lib.transforms.n4_bias_correct_channels``, on the working grid, the field on a grid of
``--field-spacing-mm``, as ``N4BiasCorrectiond`` serves a model trained with N4). Per case: whole
tumor Dice, predicted and true volume, false-positive volume in the lowest ``--low-fraction``
of the brain's height (cerebellum, temporal base: where receive-coil sensitivity falls off), and
the time N4 took. The models were trained without N4, so this tests the cause, not a recipe.

    .venv/bin/python experiments/bias_field_effect.py --real data/real --folds data/cv2/folds.json \\
        --cache data/fp-cache --out experiments/results/bias_field_effect.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import provenance  # noqa: E402

from lib.brats import labelled_cases  # noqa: E402
from lib.evaluation import region_dice, working_grid_labels  # noqa: E402
from lib.model import Checkpoint, load_checkpoint  # noqa: E402
from lib.trainers.data import PreparedCase, normalize_case, prepare_case  # noqa: E402
from lib.transforms import n4_bias_correct_channels  # noqa: E402
from lib.transforms.harmonization import N4_FIELD_SPACING_MM  # noqa: E402


def case_scores(model: Checkpoint, case: PreparedCase, low: np.ndarray) -> dict[str, float]:
    """Whole-tumor Dice and volumes (mL) of the served prediction on the working grid;
    ``low`` (X, Y, Z) bool: the region whose false positives are counted apart."""
    predicted = working_grid_labels(model, normalize_case(case, model.landmarks).image, case.brain_mask)
    truth = case.label[0]
    voxel_ml = model.spacing_mm ** 3 / 1000.0
    false_positive = (predicted > 0) & (truth == 0)
    return {"wt_dice": round(region_dice(predicted, truth)["WT"], 3),
            "predicted_ml": round(float((predicted > 0).sum()) * voxel_ml, 1),
            "fp_low_ml": round(float((false_positive & low).sum()) * voxel_ml, 1),
            "fp_ml": round(float(false_positive.sum()) * voxel_ml, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", type=Path, required=True, help="folder of the real labelled cases")
    ap.add_argument("--folds", type=Path, required=True, help="folds.json of the cross-validation")
    ap.add_argument("--cache", type=Path, help="cache of preprocessed cases")
    ap.add_argument("--field-spacing-mm", type=float, default=N4_FIELD_SPACING_MM,
                    help="N4 estimates the bias field on a grid of about this spacing")
    ap.add_argument("--low-fraction", type=float, default=0.3, help="'low' = this lowest part of the brain's height")
    ap.add_argument("--out", type=Path, help="JSON report")
    args = ap.parse_args(argv)

    report: dict[str, Any] = {"provenance": provenance(),
                              "field_spacing_mm": args.field_spacing_mm, "low_fraction": args.low_fraction, "cases": {}}
    cases = {c["case_id"]: c for c in labelled_cases(args.real)}
    for fold in json.loads(args.folds.read_text())["folds"]:
        model = load_checkpoint(fold["checkpoint"])
        voxel_ml = model.spacing_mm ** 3 / 1000.0
        for case_id in fold["held_out"]:
            case = cases[case_id]
            plain = prepare_case(case, args.cache, model.spacing_mm)
            brain = plain.brain_mask[0] > 0
            start = time.perf_counter()
            corrected = n4_bias_correct_channels(plain.image, brain, (model.spacing_mm,) * 3, args.field_spacing_mm)
            n4_s = time.perf_counter() - start
            truth = plain.label[0] > 0
            z = np.argwhere(brain)[:, 2]
            height = (np.arange(brain.shape[2]) - z.min()) / max(1, z.max() - z.min())
            low = brain & (height < args.low_fraction)[None, None, :]
            row = {"true_ml": round(float(truth.sum()) * voxel_ml, 1), "n4_s": round(n4_s, 1),
                   "served": case_scores(model, plain, low),
                   "n4": case_scores(model, PreparedCase(case_id, corrected, plain.label, plain.brain_mask), low)}
            report["cases"][case_id] = row
            print(case_id, json.dumps(row), flush=True)
    rows = report["cases"].values()
    metrics = ("wt_dice", "fp_ml", "fp_low_ml")
    report["mean"] = {k: {m: round(float(np.mean([r[k][m] for r in rows])), 3) for m in metrics}
                      for k in ("served", "n4")}
    print(json.dumps(report["mean"]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
