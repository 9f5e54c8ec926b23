"""Where do the model's false positives come from? Intensities the network sees, real vs generated.

For each labelled case, on the working grid and with the intensities the network is given (the
served preprocessing, the checkpoint's Nyúl landmarks, z-score over the brain), the voxels are
sorted into classes:

- ``edema``, ``core``: the reference's edema (2) and core (1 + 3);
- ``fp_near``: predicted tumor outside the reference, within ``--near-mm`` of it (a lesion drawn
  too large);
- ``fp_far``: predicted tumor farther away (a lesion that is not there);
- ``normal``: brain that neither the reference nor the model calls tumor.

Per class: its volume (mL) and the median of each normalised sequence. Comparing the classes
across real and generated cases says whether the false positives are tissue that *looks* like
edema to the network (normal FLAIR/T2 brighter on real scans than on generated ones: a
generator or harmonization gap) or tissue that does not (the network generalizes badly).
Real cases are scored with the model of the fold that did not train on them (``--folds``).

    .venv/bin/python experiments/false_positive_sources.py --real data/real --folds data/cv2/folds.json \\
        --generated data/heldout --checkpoint monailabel_app/model/brats_segresnet.pt \\
        --cache data/fp-cache --out experiments/results/false_positive_sources.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import provenance  # noqa: E402

from lib.brats import SEQUENCES, labelled_cases  # noqa: E402
from lib.evaluation import working_grid_labels  # noqa: E402
from lib.model import Checkpoint, load_checkpoint  # noqa: E402
from lib.trainers.data import normalize_case, prepare_case  # noqa: E402

CLASSES = ("edema", "core", "fp_near", "fp_far", "normal")


def voxel_classes(predicted: np.ndarray, truth: np.ndarray, brain: np.ndarray, spacing_mm: float,
                  near_mm: float) -> dict[str, np.ndarray]:
    """Boolean masks (X, Y, Z) of :data:`CLASSES` from labels on the working grid (values 0-3;
    4 is read as 3)."""
    reference = truth > 0
    false_positive = (predicted > 0) & ~reference
    if reference.any():
        distance_mm = ndimage.distance_transform_edt(~reference, sampling=spacing_mm)
    else:
        distance_mm = np.full(reference.shape, np.inf)
    return {"edema": truth == 2, "core": np.isin(truth, (1, 3, 4)),
            "fp_near": false_positive & (distance_mm <= near_mm),
            "fp_far": false_positive & (distance_mm > near_mm),
            "normal": brain & ~reference & (predicted == 0)}


def case_profile(case: dict[str, str], model: Checkpoint, cache: Path | None, near_mm: float) -> dict[str, Any]:
    """Volume (mL) and per-sequence median normalised intensity of each voxel class of one case."""
    prepared = prepare_case(case, cache, model.spacing_mm, model.n4)
    image = normalize_case(prepared, model.landmarks).image
    predicted = working_grid_labels(model, image, prepared.brain_mask)
    classes = voxel_classes(predicted, prepared.label[0], prepared.brain_mask[0] > 0, model.spacing_mm, near_mm)
    voxel_ml = model.spacing_mm ** 3 / 1000.0
    profile: dict[str, Any] = {"model": model.version}
    for name, mask in classes.items():
        profile[name] = {"ml": round(float(mask.sum()) * voxel_ml, 1),
                         **{seq: (round(float(np.median(image[i][mask])), 2) if mask.any() else None)
                            for i, seq in enumerate(SEQUENCES)}}
    return profile


def group_summary(profiles: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per class: total mL over the cases and the median over cases of each sequence's median."""
    out: dict[str, Any] = {}
    for name in CLASSES:
        rows = [p[name] for p in profiles.values()]
        out[name] = {"ml": round(sum(r["ml"] for r in rows), 1)}
        for seq in SEQUENCES:
            values = [r[seq] for r in rows if r[seq] is not None]
            out[name][seq] = round(float(np.median(values)), 2) if values else None
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = ["| cases | class | mL (all cases) | " + " | ".join(SEQUENCES) + " |",
             "|---|---|---:|" + "---:|" * len(SEQUENCES)]
    for group, summary in report["summary"].items():
        for name in CLASSES:
            row = summary[name]
            cells = " | ".join("" if row[s] is None else f"{row[s]:+.2f}" for s in SEQUENCES)
            lines.append(f"| {group} | {name} | {row['ml']:.0f} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", type=Path, help="folder of real labelled cases")
    ap.add_argument("--folds", type=Path, help="folds.json: each real case scored by the fold that held it out")
    ap.add_argument("--generated", type=Path, help="folder of generated labelled cases (held out)")
    ap.add_argument("--checkpoint", type=Path, default=REPO / "monailabel_app" / "model" / "brats_segresnet.pt",
                    help="model for the generated cases, and for the real ones without --folds")
    ap.add_argument("--cache", type=Path, help="cache of preprocessed cases")
    ap.add_argument("--near-mm", type=float, default=10.0,
                    help="false positives this close to the reference are 'near'")
    ap.add_argument("--out", type=Path, help="JSON report (a Markdown table is written next to it)")
    args = ap.parse_args(argv)

    default = load_checkpoint(args.checkpoint)
    fold_models: dict[str, Checkpoint] = {}
    if args.folds:
        for fold in json.loads(args.folds.read_text())["folds"]:
            model = load_checkpoint(fold["checkpoint"])
            fold_models.update({case: model for case in fold["held_out"]})
    groups = {"real": args.real, "generated": args.generated}
    report: dict[str, Any] = {"provenance": provenance(args.checkpoint, default.version),
                              "near_mm": args.near_mm, "cases": {}, "summary": {}}
    for group, folder in groups.items():
        if folder is None:
            continue
        profiles = {}
        for case in labelled_cases(folder):
            model = fold_models.get(case["case_id"], default) if group == "real" else default
            profiles[case["case_id"]] = case_profile(case, model, args.cache, args.near_mm)
            print(group, case["case_id"], json.dumps({k: v["ml"] for k, v in profiles[case["case_id"]].items()
                                                      if isinstance(v, dict)}), flush=True)
        report["cases"][group] = profiles
        report["summary"][group] = group_summary(profiles)
    table = markdown(report)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
        args.out.with_suffix(".md").write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
