"""Per-label contrast of labelled cases as the network sees them: generated next to real.

The generator's realism check for tumor tissue. Each case goes through the training
preprocessing on the model's grid (``prepare_case``) and the model's intensity normalisation
(Nyúl landmarks of ``--checkpoint``, then z-score over the brain: ``normalize_case``). Per
case and label (NCR 1, ED 2, ET 3 or 4, and normal brain) the median of each sequence is
taken; a group's row is the median of those over its cases, so one large tumor does not
outweigh the others. Normal brain also gets its 95th percentile: the bright healthy tissue
(vessels, cortex) that a network must not call tumor. The generator never reads the real
cases; only this script does.

    .venv/bin/python sample-data/label_contrast.py --group real=data/real --group extra=data/extra \\
        --group generated=data/synth6 --cache data/fp-cache
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lib.brats import SEQUENCES, labelled_cases  # noqa: E402
from lib.model import load_checkpoint  # noqa: E402
from lib.trainers.data import normalize_case, prepare_case  # noqa: E402

#: Row name -> label values of the reference (4 is BraTS 2021's ET).
ROWS: dict[str, tuple[int, ...]] = {"NCR": (1,), "ED": (2,), "ET": (3, 4), "normal": (0,)}


def case_medians(image: np.ndarray, label: np.ndarray, brain: np.ndarray) -> dict[str, np.ndarray | None]:
    """Per row of :data:`ROWS`: the median of each channel of ``image`` (C, X, Y, Z) over that
    label inside ``brain``, or None when the case has under 10 voxels of it; ``normal_p95``:
    the 95th percentile of the normal brain."""
    out: dict[str, np.ndarray | None] = {}
    for name, values in ROWS.items():
        mask = np.isin(label, values) & brain
        out[name] = np.median(image[:, mask], axis=1) if mask.sum() >= 10 else None
    normal = (label == 0) & brain
    out["normal_p95"] = np.percentile(image[:, normal], 95, axis=1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--group", action="append", required=True, metavar="NAME=FOLDER",
                    help="a named folder of labelled cases (BraTS naming, a *-seg.nii* label each)")
    ap.add_argument("--checkpoint", type=Path, default=REPO / "monailabel_app" / "model" / "brats_segresnet.pt",
                    help="whose grid and intensity normalisation to apply")
    ap.add_argument("--cache", type=Path, help="cache of preprocessed cases (shared with training)")
    args = ap.parse_args(argv)

    model = load_checkpoint(args.checkpoint)
    print("| group | label | cases | " + " | ".join(SEQUENCES) + " |")
    print("|---|---|---:|" + "---:|" * len(SEQUENCES))
    for spec in args.group:
        name, _, folder = spec.partition("=")
        per_case = []
        for case in labelled_cases(folder):
            prepared = normalize_case(prepare_case(case, args.cache, model.spacing_mm, model.n4), model.landmarks)
            per_case.append(case_medians(prepared.image, prepared.label[0], prepared.brain_mask[0] > 0))
        for row in (*ROWS, "normal_p95"):
            values = [v for c in per_case if (v := c[row]) is not None]
            if not values:
                continue
            median = np.median(np.stack(values), axis=0)
            print(f"| {name} | {row} | {len(values)} | " + " | ".join(f"{v:+.2f}" for v in median) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
