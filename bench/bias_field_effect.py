"""Are the false positives low in the head a bias field? N4 at inference, out-of-fold.

Each real case goes through the model of the fold that held it out (``--folds``), on the model's
grid, twice: as served (Nyúl + z-score) and with N4 bias-field correction of every sequence
first (``lib.transforms.n4_bias_correct``, on the working grid, ``--shrink``). Per case: whole
tumor Dice, predicted and true volume, false-positive volume in the lowest ``--low-fraction``
of the brain's height (cerebellum, temporal base: where receive-coil sensitivity falls off), and
the time N4 took. The models were trained without N4, so this tests the cause, not a recipe.

    .venv/bin/python bench/bias_field_effect.py --real /data/real --folds /data/cv2/folds.json \\
        --cache /data/fp-cache --out bench/results/bias_field_effect.json
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

from lib.brats import labelled_cases  # noqa: E402
from lib.evaluation import working_grid_labels  # noqa: E402
from lib.model import Checkpoint, load_checkpoint  # noqa: E402
from lib.trainers.data import PreparedCase, normalize_case, prepare_case  # noqa: E402
from lib.transforms import n4_bias_correct  # noqa: E402


def whole_tumor(model: Checkpoint, case: PreparedCase) -> np.ndarray:
    """Predicted whole tumor (X, Y, Z) bool on the working grid, served postprocessing."""
    return working_grid_labels(model, normalize_case(case, model.landmarks).image) > 0


def scores(predicted: np.ndarray, truth: np.ndarray, low: np.ndarray, voxel_ml: float) -> dict[str, float]:
    total = predicted.sum() + truth.sum()
    return {"wt_dice": round(float(2 * (predicted & truth).sum() / total) if total else 1.0, 3),
            "predicted_ml": round(float(predicted.sum()) * voxel_ml, 1),
            "fp_low_ml": round(float((predicted & ~truth & low).sum()) * voxel_ml, 1),
            "fp_ml": round(float((predicted & ~truth).sum()) * voxel_ml, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", type=Path, required=True, help="folder of the real labelled cases")
    ap.add_argument("--folds", type=Path, required=True, help="folds.json of the cross-validation")
    ap.add_argument("--cache", type=Path, help="cache of preprocessed cases")
    ap.add_argument("--shrink", type=int, default=2, help="N4 estimates the field on a grid this much coarser")
    ap.add_argument("--low-fraction", type=float, default=0.3, help="'low' = this lowest part of the brain's height")
    ap.add_argument("--out", type=Path, help="JSON report")
    args = ap.parse_args(argv)

    report: dict[str, Any] = {"shrink": args.shrink, "low_fraction": args.low_fraction, "cases": {}}
    cases = {c["case_id"]: c for c in labelled_cases(args.real)}
    for fold in json.loads(args.folds.read_text())["folds"]:
        model = load_checkpoint(fold["checkpoint"])
        voxel_ml = model.spacing_mm ** 3 / 1000.0
        for case_id in fold["held_out"]:
            case = cases[case_id]
            plain = prepare_case(case, args.cache, model.spacing_mm)
            brain = plain.brain_mask[0] > 0
            start = time.perf_counter()
            corrected = np.stack([n4_bias_correct(channel, brain, (model.spacing_mm,) * 3, shrink=args.shrink)
                                  for channel in plain.image])
            n4_s = time.perf_counter() - start
            truth = plain.label[0] > 0
            z = np.argwhere(brain)[:, 2]
            height = (np.arange(brain.shape[2]) - z.min()) / max(1, z.max() - z.min())
            low = brain & (height < args.low_fraction)[None, None, :]
            row = {"true_ml": round(float(truth.sum()) * voxel_ml, 1), "n4_s": round(n4_s, 1),
                   "served": scores(whole_tumor(model, plain), truth, low, voxel_ml),
                   "n4": scores(whole_tumor(model, PreparedCase(case_id, corrected, plain.label, plain.brain_mask)),
                                truth, low, voxel_ml)}
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
