"""Model card figures: held-out Dice on generated cases, and what the model does on real cases.

For every labelled case folder under ``--heldout`` (generated from seeds the model never saw)
the case is segmented through the same code path as the server and WT/TC/ET Dice against
its ground truth are printed with the mean. For every case under ``--real`` (unlabelled)
the predicted volumes are printed and a montage is written: per case, the axial slice
through the predicted tumor, t1c and FLAIR, and FLAIR with the label drawn over it
(NCR red, ED green, ET yellow).

    .venv/bin/python bench/evaluate_model.py --heldout DIR --real ../shared/real-cases \
        --png docs/images/model-on-real-cases.png --out bench/results/model_evaluation.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lib.infers.pipeline import TumorSegmenter  # noqa: E402
from lib.model import PredictionSettings  # noqa: E402
from lib.transforms import array_xyz  # noqa: E402
from lib.transforms.geometry import reorient_to_ras  # noqa: E402
from lib.trainers.engine import region_dice  # noqa: E402

COLOURS = {1: (230, 40, 40), 2: (40, 200, 60), 3: (250, 220, 30)}


def case_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def ras(image: sitk.Image) -> np.ndarray:
    return array_xyz(reorient_to_ras(image))


def grey(slice_xy: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(X, Y) RAS slice -> (rows, cols) radiological view: patient's right on the left, anterior up."""
    return np.rot90(np.clip((slice_xy - lo) / (hi - lo + 1e-6), 0, 1))[:, ::-1]


def montage_row(case: Path, label: sitk.Image, size: int = 200) -> Image.Image:
    t1c = sitk.ReadImage(str(next(case.glob("*-t1c.nii*"))), sitk.sitkFloat32)
    flair = sitk.Resample(sitk.ReadImage(str(next(case.glob("*-t2f.nii*"))), sitk.sitkFloat32), t1c)
    t1c_a, flair_a, lab = ras(t1c), ras(flair), ras(label)
    z = int(np.argwhere(lab > 0)[:, 2].mean()) if lab.any() else lab.shape[2] // 2
    tiles = []
    for arr in (t1c_a, flair_a):
        lo, hi = np.percentile(arr[arr > 0], (0.5, 99.5)) if (arr > 0).any() else (0, 1)
        tiles.append(np.repeat((grey(arr[:, :, z], lo, hi) * 255).astype(np.uint8)[..., None], 3, axis=2))
    overlay = tiles[1].copy()
    lab_view = np.rot90(lab[:, :, z])[:, ::-1]
    for value, colour in COLOURS.items():
        m = lab_view == value
        overlay[m] = (0.45 * overlay[m] + 0.55 * np.array(colour)).astype(np.uint8)
    tiles.append(overlay)
    images = [Image.fromarray(t).resize((size, int(size * t.shape[0] / t.shape[1]))) for t in tiles]
    row = Image.new("RGB", (size * 3, images[0].height + 18), "black")
    for i, im in enumerate(images):
        row.paste(im, (i * size, 18))
    ImageDraw.Draw(row).text((4, 3), f"{case.name}  (axial {z}; t1c | FLAIR | NCR red, ED green, ET yellow)",
                             fill="white")
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=REPO / "monailabel_app" / "model" / "brats_segresnet.pt")
    ap.add_argument("--heldout", type=Path)
    ap.add_argument("--real", type=Path)
    ap.add_argument("--png", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--mirror-axes", default="", help='test-time flips as the server\'s conf, e.g. "0"')
    args = ap.parse_args()
    mirror = tuple(int(a) for a in args.mirror_axes.split(",") if a.strip())
    segmenter = TumorSegmenter([args.checkpoint], PredictionSettings(mirror_axes=mirror))
    report: dict = {"model_version": segmenter.checkpoint().version, "mirror_axes": list(mirror),
                    "heldout": {}, "real": {}}

    if args.heldout:
        for case in case_folders(args.heldout):
            result = segmenter.segment(str(case))
            truth = sitk.GetArrayFromImage(sitk.ReadImage(str(next(case.glob("*-seg.nii*")))))
            dice = region_dice(sitk.GetArrayFromImage(result.label).transpose(2, 1, 0), truth.transpose(2, 1, 0))
            meta = json.loads(next(case.glob("*-meta.json")).read_text())
            report["heldout"][case.name] = {"dice": dice, "kind": meta["tumors"][0]["kind"],
                                            "lesions": len(meta["tumors"]), "style": meta["site"]["style"],
                                            "seconds": result.seconds}
            print(case.name, {k: round(v, 3) for k, v in dice.items()}, flush=True)
        scores = [v["dice"] for v in report["heldout"].values()]
        report["heldout_mean_dice"] = {r: float(np.mean([s[r] for s in scores])) for r in ("WT", "TC", "ET")}
        print("mean", {k: round(v, 3) for k, v in report["heldout_mean_dice"].items()})

    rows = []
    if args.real:
        for case in case_folders(args.real):
            result = segmenter.segment(str(case))
            report["real"][case.name] = {"volumes_ml": result.volumes_ml, "seconds": result.seconds}
            print(case.name, result.volumes_ml, flush=True)
            if args.png:
                rows.append(montage_row(case, result.label))
    if rows and args.png:
        sheet = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)), "black")
        y = 0
        for r in rows:
            sheet.paste(r, (0, y))
            y += r.height
        args.png.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(args.png)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
