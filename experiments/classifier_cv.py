"""The model comparison: the network alone, the FLAIR floor, the voxel classifier (one and two
stages) and the fusion, out of fold over the real labelled cases, in one run with the same folds.

Every ``--real`` case is cross-validated: the cases are dealt into ``--folds`` fixed folds (largest
tumor with smallest, as ``experiments/cross_validate.py`` does; recorded in ``<work>/folds.json``). For
each fold the classifier variants are trained (:func:`lib.classifier.fit.fit_classifiers`) on the
other folds' real cases plus the ``--synthetic`` generated cases; their thresholds and component
rule are chosen on inner out-of-fold predictions of those training cases (nested), never on the
fold's own cases. The held-out cases are then segmented by each variant and scored on their
own t1c grid (:func:`lib.evaluation.case_metrics`, without the Hausdorff distances), as are the
network alone (``--cnn``, through its served postprocessing) and the FLAIR floor
(``experiments/evaluate_model.py``'s).

The network is ``--cnn``: it must not have been trained on any ``--real`` case, so that it is out
of fold for every one of them (the generated-data-only model is). The fusion reads its region
probabilities; the network is not retrained here.

``--final`` then trains the variant with the best mean out-of-fold score (the mean of WT Dice, TC
Dice and ET score) on every real and generated case, with the same nested threshold selection,
and writes it with the network as one checkpoint (the served model). ``--heldout`` scores that
checkpoint on other labelled cases (the generated held-out set).

Each fold's results are kept in ``<work>/fold<i>.json``: an interrupted run resumes.

    .venv/bin/python experiments/classifier_cv.py --real data/real --real data/extra \\
        --synthetic data/synth6v2 --synthetic data/synth-old6 --cnn data/synth-2026.11.22.pt \\
        --work data/ccv --folds 7 --out experiments/results/classifier_cv \\
        --final monailabel_app/model/brats_segresnet.pt --heldout data/heldout
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "experiments"))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import cpu_model  # noqa: E402
from cross_validate import make_folds  # noqa: E402
from evaluate_model import flair_floor, read_truth, summary  # noqa: E402

from lib.atomic import read_json, write_json  # noqa: E402
from lib.brats import labelled_cases  # noqa: E402
from lib.classifier.fit import VoxelCase, fit_classifiers, voxel_case  # noqa: E402
from lib.classifier.model import FUSION, ONE_STAGE, TWO_STAGE, VARIANTS, VoxelClassifier  # noqa: E402
from lib.evaluation import case_metrics  # noqa: E402
from lib.infers.pipeline import TumorSegmenter  # noqa: E402
from lib.model import Checkpoint, PredictionSettings, load_checkpoint, predict_regions  # noqa: E402
from lib.model.checkpoint import with_classifier  # noqa: E402
from lib.postprocessing import postprocess  # noqa: E402
from lib.trainers.config import TrainConfig  # noqa: E402
from lib.transforms import restore_label  # noqa: E402

CNN, FLOOR = "cnn", "floor"
ROWS = (CNN, FLOOR, *VARIANTS)
TITLES = {CNN: "network alone (generated-data-only SegResNet)", FLOOR: "FLAIR floor (z > 1.25, opening, largest)",
          ONE_STAGE: "classifier, one stage", TWO_STAGE: "classifier, two stages",
          FUSION: "fusion (two stages + network + floor)"}


def relative(path: Path | str) -> str:
    """A path as recorded in results: relative to the repository when inside it, else its name."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(REPO))
    except ValueError:
        return p.name


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Case:
    """A labelled case: its files, its preprocessed working-grid data and the network's output."""

    def __init__(self, record: dict[str, str], model: Checkpoint, weight: float) -> None:
        self.case_id, self.folder = record["case_id"], Path(record["image"])
        self.data = model.preprocessing(with_label=True)({"image": record["image"], "label": record["label"],
                                                          "case_id": self.case_id})
        settings = PredictionSettings(roi_size=model.roi_size, device="cpu")
        self.cnn = predict_regions(model.network, self.data["image"], settings)
        self.voxels: VoxelCase = voxel_case(self.case_id, self.data, model.spacing_mm, self.cnn, weight)
        self.spacing_mm = model.spacing_mm

    def metrics(self, labels: np.ndarray) -> dict[str, Any]:
        """Working-grid labels restored onto the case's t1c grid and scored against its reference."""
        truth = read_truth(self.folder)
        predicted = restore_label(labels, self.data["geometry"], self.case_id)
        spacing = tuple(reversed(truth.GetSpacing()))
        return case_metrics(sitk.GetArrayFromImage(predicted), sitk.GetArrayFromImage(truth), spacing, hd95=False)


def classify(classifier: VoxelClassifier, case: Case) -> np.ndarray:
    regions = classifier.regions_from_features(case.voxels.base, case.voxels.data,
                                               case.cnn if classifier.uses_network else None)
    return classifier.labels(regions, case.data["image"], case.data["brain_mask"])


def table_rows(per_variant: dict[str, dict[str, dict[str, Any]]], floor: dict[str, dict[str, Any]]) -> list[dict]:
    """One summary row per compared model: means, ET on enhancing cases, volume ratios, and the
    issue's per-case targets (at or above the floor's WT, WT volume within 0.67-1.5x, no ET over
    1 mL in a case without)."""
    rows = []
    for name in ROWS:
        cases = per_variant.get(name)
        if not cases:
            continue
        s = summary(cases)
        ratios = {c: m["predicted_ml"]["WT"] / m["true_ml"]["WT"] for c, m in cases.items()}
        rows.append({"model": name, "title": TITLES[name], **s,
                     "mean_score": float(np.mean([s["mean_dice"]["WT"], s["mean_dice"]["TC"], s["et_score"]])),
                     "below_floor": sorted(c for c, m in cases.items()
                                           if m["dice"]["WT"] < floor[c]["dice"]["WT"] - 1e-9),
                     "volume_outside": sorted(c for c, r in ratios.items() if not 0.67 <= r <= 1.5),
                     "false_et": sorted(c for c, m in cases.items()
                                        if not m["enhancing"] and m["predicted_ml"]["ET"] > 1.0)})
    return rows


def markdown(report: dict[str, Any]) -> str:
    lines = [f"Out of fold over {len(report['cases'])} real cases, {report['folds']} folds; "
             f"commit {report['commit']}; {report['machine']}.", "",
             "| model | WT | TC | ET score | ET Dice (enhancing cases) | WT volume ratio | below floor | "
             "volume outside 0.67-1.5x | no-ET cases with > 1 mL ET |", "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for row in report["table"]:
        et = row["et_dice_enhancing_cases"]
        lo, hi = row["wt_volume_ratio"]
        lines.append(f"| {row['title']} | {row['mean_dice']['WT']:.3f} | {row['mean_dice']['TC']:.3f} | "
                     f"{row['et_score']:.3f} | {'-' if et is None else f'{et:.3f}'} | {lo:.2f}-{hi:.2f} | "
                     f"{len(row['below_floor'])} | {len(row['volume_outside'])} | {len(row['false_et'])} |")
    best = report["best"]
    lines += ["", f"Best by the mean of WT, TC and ET score: **{TITLES[best]}**.", "",
              f"Per case, {TITLES[best]} against the floor (out of fold):", "",
              "| case | WT | TC | ET | ET score | WT mL predicted / true | ET mL predicted / true | floor WT | "
              "WT - floor |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for case, m in report["per_variant"][best].items():
        floor = report["per_variant"][FLOOR][case]["dice"]["WT"]
        lines.append(f"| {case} | {m['dice']['WT']:.3f} | {m['dice']['TC']:.3f} | "
                     f"{m['dice']['ET']:.3f}{'' if m['enhancing'] else ' (none)'} | {m['et_score']:.2f} | "
                     f"{m['predicted_ml']['WT']:.0f} / {m['true_ml']['WT']:.0f} | "
                     f"{m['predicted_ml']['ET']:.1f} / {m['true_ml']['ET']:.1f} | {floor:.3f} | "
                     f"{m['dice']['WT'] - floor:+.3f} |")
    lines += ["", "Per case WT Dice of every model:", "",
              "| case | " + " | ".join(r["model"] for r in report["table"]) + " |",
              "|---|" + "---:|" * len(report["table"])]
    for case in report["cases"]:
        lines.append(f"| {case} | " + " | ".join(f"{report['per_variant'][r['model']][case]['dice']['WT']:.3f}"
                                                 for r in report["table"]) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", type=Path, action="append", required=True, help="real labelled cases (cross-validated)")
    ap.add_argument("--synthetic", type=Path, action="append", default=[], help="generated cases, always trained on")
    ap.add_argument("--synthetic-weight", type=float, default=0.5, help="weight of a generated case's voxels")
    ap.add_argument("--cnn", type=Path, required=True, help="the network (trained on none of the --real cases)")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--folds", type=int, default=7)
    ap.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "classifier_cv",
                    help=".json/.md stem")
    ap.add_argument("--final", type=Path, help="train the best variant on every case and write the checkpoint here")
    ap.add_argument("--version", default=f"brats-fusion-2mm-{time.strftime('%Y.%m.%d')}")
    ap.add_argument("--heldout", type=Path, help="labelled cases to score the --final checkpoint on")
    ap.add_argument("--threads", type=int, default=2,
                    help="LightGBM threads (1 is several times faster on cores that other work keeps busy)")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    options = TrainConfig(num_threads=args.threads).classifier_options()
    model = load_checkpoint(args.cnn)
    real = [c for folder in args.real for c in labelled_cases(folder)]
    synthetic = [c for folder in args.synthetic for c in labelled_cases(folder)]
    folds_file = args.work / "folds.json"
    if folds_file.exists():
        folds = read_json(folds_file)["folds"]
    else:
        folds = make_folds(real, args.folds)
        write_json(folds_file, {"folds": folds})
    started = time.monotonic()
    cache = args.work / "cases" / sha256(args.cnn)[:12]
    cache.mkdir(parents=True, exist_ok=True)

    def prepared(record: dict[str, str], weight: float) -> Case:
        """A case's working-grid data, features and network output (cached per network file)."""
        path = cache / f"{record['case_id']}.pkl"
        if path.exists():
            with open(path, "rb") as fh:
                case: Case = pickle.load(fh)
        else:
            case = Case(record, model, weight)
            with open(path, "wb") as fh:
                pickle.dump(case, fh, protocol=pickle.HIGHEST_PROTOCOL)
        case.voxels.weight = weight
        return case

    cases = {c["case_id"]: prepared(c, 1.0) for c in real}
    generated = [prepared(c, args.synthetic_weight) for c in synthetic]
    print(f"{len(cases)} real and {len(generated)} generated cases prepared ({time.monotonic() - started:.0f} s)",
          flush=True)

    per_variant: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in ROWS}
    for case_id, case in cases.items():
        per_variant[CNN][case_id] = case.metrics(postprocess(case.cnn, (case.spacing_mm,) * 3, case.data["image"],
                                                             case.data["brain_mask"]))
        truth = read_truth(case.folder)
        per_variant[FLOOR][case_id] = case_metrics(sitk.GetArrayFromImage(flair_floor(case.folder)),
                                                   sitk.GetArrayFromImage(truth), tuple(reversed(truth.GetSpacing())),
                                                   hd95=False)
    fold_records = []
    for i, held_out in enumerate(folds):
        fold_file = args.work / f"fold{i}.json"
        record = read_json(fold_file)
        if not record:
            t0 = time.monotonic()
            train = [cases[c].voxels for c in cases if c not in held_out] + [g.voxels for g in generated]
            classifiers = fit_classifiers(train, options, VARIANTS, progress=lambda m, i=i: print(f"fold {i}: {m}",
                                                                                                   flush=True))
            record = {"held_out": held_out, "train_seconds": round(time.monotonic() - t0, 1),
                      "thresholds": {v: c.thresholds.to_dict() for v, c in classifiers.items()},
                      "inner_oof": {v: c.training["inner_oof"] for v, c in classifiers.items()},
                      "cases": {v: {c: cases[c].metrics(classify(k, cases[c])) for c in held_out}
                                for v, k in classifiers.items()}}
            write_json(fold_file, record)
        fold_records.append({k: record[k] for k in ("held_out", "train_seconds", "thresholds", "inner_oof")})
        for variant, by_case in record["cases"].items():
            per_variant[variant].update(by_case)
        print(f"fold {i} {held_out}: " + "; ".join(
            f"{v} WT {np.mean([m['dice']['WT'] for m in record['cases'][v].values()]):.3f}" for v in VARIANTS),
            flush=True)

    order = [c for c in cases]
    per_variant = {name: {c: per_variant[name][c] for c in order} for name in ROWS}
    table = table_rows(per_variant, per_variant[FLOOR])
    best = max((r for r in table if r["model"] in VARIANTS), key=lambda r: r["mean_score"])["model"]
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    report: dict[str, Any] = {
        "command": "experiments/classifier_cv.py " + " ".join(relative(a) if Path(a).exists() else a
                                                        for a in (argv if argv is not None else sys.argv[1:])),
        "commit": commit, "machine": f"{cpu_model()}, {len(__import__('os').sched_getaffinity(0))} cores",
        "cnn": {"version": model.version, "sha256": sha256(args.cnn)}, "options": options.__dict__,
        "synthetic": [g.case_id for g in generated], "synthetic_weight": args.synthetic_weight,
        "folds": len(folds), "fold_records": fold_records, "cases": order, "table": table, "best": best,
        "per_variant": per_variant}
    if args.final:
        t0 = time.monotonic()
        final = fit_classifiers([c.voxels for c in cases.values()] + [g.voxels for g in generated], options, [best],
                                progress=lambda m: print(f"final: {m}", flush=True))[best]
        final.training.update({"selected_by": relative(args.out.with_suffix(".json")), "synthetic_weight":
                               args.synthetic_weight})
        with_classifier(model, final, args.final, version=args.version,
                        training={"network": {"version": model.version, **{k: model.training.get(k) for k in
                                                                            ("epoch", "val_dice")}},
                                  "classifier": final.training})
        report["final"] = {"checkpoint": relative(args.final), "version": args.version, "variant": best,
                           "sha256": sha256(args.final), "size_mb": round(args.final.stat().st_size / 1e6, 2),
                           "thresholds": final.thresholds.to_dict(), "train_seconds": round(time.monotonic() - t0, 1),
                           "inner_oof": final.training["inner_oof"]}
        print(json.dumps(report["final"], indent=1), flush=True)
        if args.heldout:
            segmenter = TumorSegmenter([args.final])
            held: dict[str, Any] = {}
            for c in labelled_cases(args.heldout):
                result = segmenter.segment(c["image"], c["case_id"])
                truth = read_truth(Path(c["image"]))
                held[c["case_id"]] = case_metrics(sitk.GetArrayFromImage(result.label), sitk.GetArrayFromImage(truth),
                                                  tuple(reversed(truth.GetSpacing())))
            report["heldout"] = {"cases": held, "summary": summary(held)}
            print("held-out:", json.dumps(report["heldout"]["summary"]), flush=True)
    report["seconds"] = round(time.monotonic() - started, 1)
    write_json(args.out.with_suffix(".json"), report)
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"Machine: {platform.machine()}; total {report['seconds']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
