"""Model card figures: the model on labelled cases, next to a FLAIR-threshold floor.

Every case folder (BraTS naming, ``<id>-seg`` labels 1/2/3 or the older 1/2/4) under each
``--cases`` folder is segmented through the server's code path and scored on its own t1c grid
(:func:`lib.evaluation.case_metrics`): WT/TC/ET Dice, 95% Hausdorff distance, predicted and
true volumes, WT predicted outside the reference and in false lesions, the ET score. With
``--folds`` each case is segmented by the checkpoint of the fold that did not train on it
(out-of-fold figures). The floor is what any user could write in five lines: z-score FLAIR
inside the brain, keep z > 1.25, keep the largest connected component (WT only).

    .venv/bin/python experiments/evaluate_model.py --cases data/real --folds data/cv/folds.json \\
        --out build/real_cv.json --markdown build/real_cv.md --pictures pictures
    .venv/bin/python experiments/evaluate_model.py --cases data/heldout \\
        --checkpoint monailabel_app/model/brats_segresnet.pt
    .venv/bin/python experiments/evaluate_model.py --real ../shared/real-cases --png docs/images/model-on-real-cases.png

``--effort`` adds what correcting each output to the reference would take
(:func:`lib.activelearning.effort.compare`: surface Dice, volume change, voxels changed);
``experiments/correction_effort.py`` plots it per model version.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from PIL import Image, ImageDraw
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import provenance, relative  # noqa: E402

from lib.activelearning.effort import compare  # noqa: E402
from lib.brats import label_filename, labelled_cases, read_label  # noqa: E402
from lib.evaluation import case_metrics  # noqa: E402
from lib.infers.pipeline import TumorSegmenter  # noqa: E402
from lib.model import PredictionSettings  # noqa: E402
from lib.model.checkpoint import read_checkpoint_record  # noqa: E402
from lib.postprocessing import REGION_ORDER  # noqa: E402
from lib.transforms import array_xyz, reorient_to_ras  # noqa: E402

BUNDLED = REPO / "monailabel_app" / "model" / "brats_segresnet.pt"
COLOURS = {1: (230, 40, 40), 2: (40, 200, 60), 3: (250, 220, 30)}
FLOOR_Z = 1.25


def labelled_case_folders(folders: list[Path]) -> list[Path]:
    return sorted((Path(c["image"]) for folder in folders for c in labelled_cases(folder)), key=lambda p: p.name)


def read_truth(case: Path) -> sitk.Image:
    """The reference label, with the pre-2023 enhancing value 4 read as 3."""
    return read_label(next(case.glob(f"{label_filename(case.name, '')}.nii*")))


def flair_floor(case: Path) -> sitk.Image:
    """The five-line floor: FLAIR z-scored over the (skull-stripped) brain, > 1.25, largest component."""
    flair = sitk.ReadImage(str(next(case.glob("*-t2f.nii*"))), sitk.sitkFloat32)
    values = sitk.GetArrayFromImage(flair)
    brain = values > 0
    z = (values - values[brain].mean()) / (values[brain].std() + 1e-6)
    components, n = ndimage.label(brain & (z > FLOOR_Z))
    mask = np.zeros(values.shape, np.uint8)
    if n:
        mask[components == np.argmax(np.bincount(components.ravel())[1:]) + 1] = 2  # all of it "edema": WT only
    floor = sitk.GetImageFromArray(mask)
    floor.CopyInformation(flair)
    return floor


def fold_of_each_case(folds_file: Path | None, checkpoint: Path) -> dict[str, Path] | Path:
    if folds_file is None:
        return checkpoint
    folds = json.loads(folds_file.read_text())["folds"]
    return {case: Path(fold["checkpoint"]) for fold in folds for case in fold["held_out"]}


def ras(image: sitk.Image) -> np.ndarray:
    return array_xyz(reorient_to_ras(image))


def grey(slice_xy: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(X, Y) RAS slice -> (rows, cols) radiological view: patient's right on the left, anterior up."""
    return np.rot90(np.clip((slice_xy - lo) / (hi - lo + 1e-6), 0, 1))[:, ::-1]


def _tile(image: np.ndarray, z: int, label: np.ndarray | None = None) -> np.ndarray:
    inside = image[image > 0]
    lo, hi = np.percentile(inside, (0.5, 99.5)) if inside.size else (0.0, 1.0)
    rgb = np.repeat((grey(image[:, :, z], lo, hi) * 255).astype(np.uint8)[..., None], 3, axis=2)
    if label is not None:
        view = np.rot90(label[:, :, z])[:, ::-1]
        for value, colour in COLOURS.items():
            m = view == value
            rgb[m] = (0.45 * rgb[m] + 0.55 * np.array(colour)).astype(np.uint8)
    return rgb


def picture(case: Path, predicted: sitk.Image, truth: sitk.Image | None, caption: str, size: int = 220) -> Image.Image:
    """One row: t1c, FLAIR, [reference], prediction, on the axial slice with the most tumor."""
    t1c = sitk.ReadImage(str(next(case.glob("*-t1c.nii*"))), sitk.sitkFloat32)
    flair = sitk.Resample(sitk.ReadImage(str(next(case.glob("*-t2f.nii*"))), sitk.sitkFloat32), t1c)
    t1c_a, flair_a, pred_a = ras(t1c), ras(flair), ras(predicted)
    truth_a = ras(truth) if truth is not None else None
    focus = truth_a if truth_a is not None and truth_a.any() else pred_a
    z = int(np.argmax((focus > 0).sum(axis=(0, 1)))) if focus.any() else focus.shape[2] // 2
    tiles = [_tile(t1c_a, z), _tile(flair_a, z)]
    if truth_a is not None:
        tiles.append(_tile(flair_a, z, truth_a))
    tiles.append(_tile(flair_a, z, pred_a))
    images = [Image.fromarray(t).resize((size, int(size * t.shape[0] / t.shape[1]))) for t in tiles]
    row = Image.new("RGB", (size * len(images), images[0].height + 18), "black")
    for i, im in enumerate(images):
        row.paste(im, (i * size, 18))
    ImageDraw.Draw(row).text((4, 3), caption, fill="white")
    return row


def stack(rows: list[Image.Image], path: Path) -> None:
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "black")
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def summary(per_case: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Mean and worst case of each region's Dice; mean ET score; WT volume ratio range."""
    dice = {r: [c["dice"][r] for c in per_case.values()] for r in REGION_ORDER}
    enhancing = [c["dice"]["ET"] for c in per_case.values() if c["enhancing"]]
    ratios = [c["predicted_ml"]["WT"] / c["true_ml"]["WT"] for c in per_case.values() if c["true_ml"]["WT"] > 0]
    return {"mean_dice": {r: float(np.mean(v)) for r, v in dice.items()},
            "worst_dice": {r: float(np.min(v)) for r, v in dice.items()},
            "et_dice_enhancing_cases": float(np.mean(enhancing)) if enhancing else None,
            "et_score": float(np.mean([c["et_score"] for c in per_case.values()])),
            "wt_volume_ratio": [float(np.min(ratios)), float(np.max(ratios))] if ratios else None,
            "false_lesions_ml_mean": float(np.mean([c["false_lesions_ml"] for c in per_case.values()]))}


def markdown(report: dict[str, Any]) -> str:
    lines = ["| case | WT | TC | ET | ET score | HD95 WT (mm) | WT mL predicted / true | false lesions mL "
             "| floor WT |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for case, m in report["cases"].items():
        floor = report["floor"]["cases"][case]["dice"]["WT"] if report.get("floor") else None
        hd = m["hd95_mm"]["WT"]
        lines.append(f"| {case} | {m['dice']['WT']:.2f} | {m['dice']['TC']:.2f} | "
                     f"{m['dice']['ET']:.2f}{'' if m['enhancing'] else ' (none)'} | {m['et_score']:.2f} | "
                     f"{'-' if hd is None else f'{hd:.1f}'} | "
                     f"{m['predicted_ml']['WT']:.0f} / {m['true_ml']['WT']:.0f} | "
                     f"{m['false_lesions_ml']:.1f} | {'' if floor is None else f'{floor:.2f}'} |")
    s = report["summary"]
    floor_mean = f"{report['floor']['summary']['mean_dice']['WT']:.2f}" if report.get("floor") else ""
    et_enh = s["et_dice_enhancing_cases"]
    lines.append(f"| **mean** | **{s['mean_dice']['WT']:.2f}** | **{s['mean_dice']['TC']:.2f}** | "
                 f"{'' if et_enh is None else f'{et_enh:.2f} (enhancing cases)'} | **{s['et_score']:.2f}** | | | "
                 f"{s['false_lesions_ml_mean']:.1f} | {floor_mean} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=Path, action="append", default=[], help="folder of labelled case folders")
    ap.add_argument("--checkpoint", type=Path, default=BUNDLED, help="the model (default: the bundled one)")
    ap.add_argument("--folds", type=Path, help="folds.json of a cross-validation: each case by its held-out fold")
    ap.add_argument("--floor", action="store_true", help="also score the FLAIR-threshold floor")
    ap.add_argument("--out", type=Path, help="JSON report")
    ap.add_argument("--markdown", type=Path, help="Markdown table")
    ap.add_argument("--pictures", type=Path, help="folder for one picture per labelled case and a sheet")
    ap.add_argument("--real", type=Path, help="folder of unlabelled cases: volumes and a picture sheet")
    ap.add_argument("--png", type=Path, help="picture sheet of the --real cases")
    ap.add_argument("--effort", action="store_true",
                    help="also the correction effort, as if an annotator corrected the output to the reference")
    ap.add_argument("--mirror-axes", default="", help='test-time flips as the server\'s conf, e.g. "0"')
    args = ap.parse_args(argv)
    mirror = tuple(int(a) for a in args.mirror_axes.split(",") if a.strip())
    model_of = fold_of_each_case(args.folds, args.checkpoint)
    segmenters: dict[Path, TumorSegmenter] = {}

    def segmenter_at(path: Path) -> TumorSegmenter:
        if path not in segmenters:
            segmenters[path] = TumorSegmenter([path], PredictionSettings(mirror_axes=mirror))
        return segmenters[path]

    single = None if isinstance(model_of, dict) else model_of
    report: dict[str, Any] = {"provenance": provenance(single, single and read_checkpoint_record(single)[0]),
                              "models": {}, "cases": {}, "real": {}}
    floor: dict[str, Any] = {}
    rows = []
    for case in labelled_case_folders(args.cases):
        segmenter = segmenter_at(model_of if isinstance(model_of, Path) else model_of[case.name])
        result = segmenter.segment(str(case), case.name)
        truth = read_truth(case)
        spacing = tuple(reversed(truth.GetSpacing()))  # numpy axis order (z, y, x)
        metrics = case_metrics(sitk.GetArrayFromImage(result.label), sitk.GetArrayFromImage(truth), spacing)
        metrics.update({"model_version": result.model_version, "seconds": result.seconds})
        if args.effort:
            metrics["correction_effort"] = compare(result.label, truth)
        report["cases"][case.name] = metrics
        report["models"][result.model_version] = relative(segmenter.checkpoint_path())
        if args.floor:
            floor[case.name] = case_metrics(sitk.GetArrayFromImage(flair_floor(case)),
                                            sitk.GetArrayFromImage(truth), spacing)
        dice = metrics["dice"]
        print(f"{case.name}: WT {dice['WT']:.3f} TC {dice['TC']:.3f} ET {dice['ET']:.3f} "
              f"(ET score {metrics['et_score']:.0f}); WT {metrics['predicted_ml']['WT']:.0f} / "
              f"{metrics['true_ml']['WT']:.0f} mL"
              + (f"; floor WT {floor[case.name]['dice']['WT']:.3f}" if args.floor else ""), flush=True)
        if args.pictures:
            caption = (f"{case.name}  t1c | FLAIR | reference | model {result.model_version}: WT {dice['WT']:.2f} "
                       f"TC {dice['TC']:.2f} ET {dice['ET']:.2f}   (NCR red, ED green, ET yellow)")
            row = picture(case, result.label, truth, caption)
            args.pictures.mkdir(parents=True, exist_ok=True)
            row.save(args.pictures / f"{case.name}.png")
            rows.append(row)
    if report["cases"]:
        report["summary"] = summary(report["cases"])
        if floor:
            report["floor"] = {"cases": floor, "summary": summary(floor)}
        print(json.dumps(report["summary"], indent=1))
        if args.markdown:
            args.markdown.parent.mkdir(parents=True, exist_ok=True)
            args.markdown.write_text(markdown(report))
    if rows and args.pictures:
        stack(rows, args.pictures / "all.png")

    real_rows = []
    if args.real:
        for case in sorted(p for p in args.real.iterdir() if p.is_dir() and not p.name.startswith(".")):
            result = segmenter_at(args.checkpoint).segment(str(case), case.name)
            report["real"][case.name] = {"volumes_ml": result.volumes_ml, "seconds": result.seconds}
            print(case.name, result.volumes_ml, flush=True)
            real_rows.append(picture(case, result.label, None, f"{case.name}  t1c | FLAIR | model "
                                                             f"{result.model_version}  (NCR red, ED green, ET yellow)"))
    if real_rows and args.png:
        stack(real_rows, args.png)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
