"""Cross-validation over the real labelled cases, then the shipped model on all of them.

The real cases are dealt into fixed folds (recorded in ``<work>/folds.json`` the first time and
never changed): sorted by whole-tumor volume, the largest is paired with the smallest, the
second largest with the second smallest, and so on, so each fold holds one large and one small
tumor. For each fold a model is fine-tuned (``btl-train``) from ``--init-from`` on the other
folds' real cases plus the ``--extra`` real cases and the ``--synthetic`` generated cases; the
epoch is chosen on a fixed validation set that is never a cross-validation case (``--val``
cases from the extra and generated ones). Each real case is then scored by the model of the
fold that did not train on it (``experiments/evaluate_model.py --folds``): out-of-fold figures.
``--final`` trains the shipped model the same way on every real case and copies it there
(after the folds, or before them with ``--final-first``, so that its check on the generated
held-out cases, which decides whether it may ship, can come first).

``--fold-selection last-epoch``: the fold and final runs have no validation set and keep their
last epoch (a schedule fixed in advance, so nothing is selected at all, and the ``--val`` cases
are trained on too). Use it after a base run: the base was already chosen on ``--val``, and a
short fine-tune rarely beats a score picked as the best of many epochs on the same cases, so
selection on ``--val`` would hand back the base and ignore the real cases.

With ``--base-options``, a base model is first trained from ``--init-from`` on the extra and
generated cases alone (no cross-validated case), with those ``btl-train`` options; every fold
and the final model then start from it. ``--base-synthetic`` adds generated cases that only the
base run sees (a large generated set for pretraining, while the fine-tunes keep the real cases'
share of the patches). The base sees no held-out case, so the figures stay
out-of-fold, and the long part of the training is done once.

``--interpolate W`` pulls each fine-tuned model back toward ``--init-from`` in weight space
(``W * fine-tuned + (1 - W) * init-from``: robust fine-tuning, Wortsman et al. 2022), so a model
adapted to the real cases keeps what ``--init-from`` knew of the generated ones. With a base run
the pull is still toward ``--init-from``, past the base: the model the recipe started from.
The folds' interpolated models are listed in ``folds-wise<W>.json`` for ``evaluate_model.py
--folds``; the final one is what ``--final`` receives.

Every step resumes: a fold whose model exists is skipped, and an interrupted ``btl-train``
continues from its saved state. Options after ``--`` go to ``btl-train``.

    .venv/bin/python experiments/cross_validate.py --real data/real --extra data/extra --synthetic data/synth \\
        --val BraTS2021-00014 --val BraTS2021-00024 --val SynBraTS-01000-000 --val SynBraTS-01000-001 \\
        --init-from monailabel_app/model/brats_segresnet.pt --work data/cv --folds 4 \\
        -- --max-epochs 40 --steps-per-epoch 20 --fine-tune-learning-rate 1e-3
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lib.atomic import atomic_path, write_json  # noqa: E402
from lib.brats import labelled_cases  # noqa: E402
from lib.model.checkpoint import interpolate_checkpoints  # noqa: E402
from lib.trainers.split import TRAIN, VALIDATION  # noqa: E402


def whole_tumor_ml(label_path: str) -> float:
    label = sitk.ReadImage(label_path)
    return float((sitk.GetArrayViewFromImage(label) > 0).sum()) * float(np.prod(label.GetSpacing())) / 1000.0


def make_folds(real: list[dict[str, str]], n_folds: int) -> list[list[str]]:
    """Largest with smallest, second largest with second smallest, ...; dealt over ``n_folds``."""
    by_size = sorted(real, key=lambda c: whole_tumor_ml(c["label"]), reverse=True)
    pairs = []
    while by_size:
        pair = [by_size.pop(0)["case_id"]]
        if by_size:
            pair.append(by_size.pop()["case_id"])
        pairs.append(pair)
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    for i, pair in enumerate(pairs):
        folds[i % n_folds].extend(pair)
    return folds


def case_folder(work: Path, name: str, cases: list[dict[str, str]]) -> Path:
    """A folder of links to the case folders a run trains and validates on."""
    folder = work / name / "cases"
    folder.mkdir(parents=True, exist_ok=True)
    for case in cases:
        link = folder / case["case_id"]
        if not link.exists():
            link.symlink_to(Path(case["image"]).resolve())
    return folder


def train(work: Path, name: str, cases: list[dict[str, str]], val_ids: list[str], out: Path, version: str,
          init_from: Path, cache: Path, extra_args: list[str]) -> dict[str, Any]:
    """One ``btl-train`` run (resumed if it was interrupted); returns its summary."""
    run_dir = work / name
    folder = case_folder(work, name, cases)
    split = run_dir / "split.json"
    if not split.exists():
        write_json(split, {"val_fraction": 0.15, "assignment": {
            c["case_id"]: VALIDATION if c["case_id"] in val_ids else TRAIN for c in cases}})
    summary_file = run_dir / "summary.json"
    if out.exists() and summary_file.exists() and not any(run_dir.glob("*.state")):
        return json.loads(summary_file.read_text())
    command = [str(Path(sys.executable).parent / "btl-train"), "--cases", str(folder), "--out", str(out),
               "--version", version, "--split", str(split), "--init-from", str(init_from), "--cache", str(cache),
               *extra_args]
    print(" ".join(command), flush=True)
    started = time.monotonic()
    with open(run_dir / "train.log", "a") as log:
        finished = subprocess.run(command, stdout=subprocess.PIPE, stderr=log, text=True, check=True)
    summary = json.loads(finished.stdout)
    summary["wall_s"] = round(time.monotonic() - started, 1)
    write_json(summary_file, summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    own, passed = list(argv if argv is not None else sys.argv[1:]), []
    if "--" in own:
        cut = own.index("--")
        own, passed = own[:cut], own[cut + 1:]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", type=Path, required=True, help="the real labelled cases that are cross-validated")
    ap.add_argument("--extra", type=Path, action="append", default=[], help="more labelled cases, always trained on")
    ap.add_argument("--synthetic", type=Path, action="append", default=[], help="generated labelled cases")
    ap.add_argument("--base-synthetic", type=Path, action="append", default=[],
                    help="generated labelled cases only the base run trains on (besides --extra and --synthetic)")
    ap.add_argument("--val", action="append", default=[], help="a fixed validation case id (not a real CV case)")
    ap.add_argument("--init-from", type=Path, required=True, help="the pretrained checkpoint every run starts from")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--final", type=Path, help="also train on every real case and publish here")
    ap.add_argument("--final-first", action="store_true",
                    help="train the final model before the folds (its held-out check can then run first)")
    ap.add_argument("--interpolate", type=float, metavar="W",
                    help="also pull every fold and the final model toward --init-from: W * fine-tuned + (1 - W) * "
                         "init-from (folds-wise<W>.json lists the fold models; the final one is published)")
    ap.add_argument("--version", default="brats-segresnet-2mm", help="model version prefix")
    ap.add_argument("--base-options", help="btl-train options of a base run on the non-CV cases (quoted)")
    ap.add_argument("--fold-selection", choices=("validation", "last-epoch"), default="validation",
                    help="how fold and final runs pick their epoch: best on --val, or the last one")
    args = ap.parse_args(own)

    if args.final_first and not args.final:
        ap.error("--final-first needs --final")
    if args.final and args.final.resolve() == args.init_from.resolve():
        ap.error("--final may not be --init-from: the folds would start from a model trained on every real case")
    if args.interpolate is not None and not 0.0 <= args.interpolate <= 1.0:
        ap.error(f"--interpolate must be in [0, 1], got {args.interpolate}")
    real = labelled_cases(args.real)
    others = [c for folder in (*args.extra, *args.synthetic) for c in labelled_cases(folder)]
    if set(args.val) & {c["case_id"] for c in real}:
        ap.error("a validation case may not be one of the cross-validated real cases")
    missing = set(args.val) - {c["case_id"] for c in others}
    if missing:
        ap.error(f"validation cases not found: {sorted(missing)}")
    args.work.mkdir(parents=True, exist_ok=True)
    folds_file = args.work / "folds.json"
    if folds_file.exists():
        recorded = json.loads(folds_file.read_text())
        folds = [fold["held_out"] for fold in recorded["folds"]]
    else:
        folds = make_folds(real, args.folds)
    cache = args.work / "cache"
    start, base_summary = args.init_from, None
    if args.base_synthetic and not args.base_options:
        ap.error("--base-synthetic needs a base run (--base-options)")
    if args.base_options:
        base = args.work / "base" / "model.pt"
        known = {c["case_id"] for c in others}
        base_only = [c for folder in args.base_synthetic for c in labelled_cases(folder) if c["case_id"] not in known]
        base_summary = train(args.work, "base", others + base_only, args.val, base, f"{args.version}-base",
                             args.init_from, cache, shlex.split(args.base_options))
        start = base

    record: dict[str, Any] = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
                              "btl_train_options": passed, "init_from": str(args.init_from), "validation": args.val,
                              "base_options": args.base_options,
                              "base_synthetic": [str(folder) for folder in args.base_synthetic],
                              "start": str(start), "base": base_summary,
                              "fold_selection": args.fold_selection,
                              "extra": [c["case_id"] for c in others if c["case_id"] not in args.val],
                              # every fold is recorded before any is trained, so that a run
                              # interrupted mid-fold resumes with all of them (summary None: not done)
                              "folds": [{"held_out": held_out, "checkpoint": str(args.work / f"fold{i}" / "model.pt"),
                                         "train_real": [c["case_id"] for c in real if c["case_id"] not in held_out],
                                         "summary": None} for i, held_out in enumerate(folds)]}
    write_json(folds_file, record)
    fold_val = args.val if args.fold_selection == "validation" else []

    def interpolated(fine_tuned: Path) -> Path:
        """The fine-tuned model pulled toward ``--init-from`` (``--interpolate``), or itself."""
        if args.interpolate is None:
            return fine_tuned
        out = fine_tuned.with_name(f"{fine_tuned.stem}.wise{args.interpolate:g}.pt")
        return interpolate_checkpoints(args.init_from, fine_tuned, args.interpolate, out)

    def train_final() -> None:
        out = args.work / "final" / "model.pt"
        summary = train(args.work, "final", real + others, fold_val, out,
                        f"{args.version}-{time.strftime('%Y.%m.%d')}", start, cache, passed)
        with atomic_path(args.final, suffix=".pt") as tmp:
            shutil.copyfile(interpolated(out), tmp)
        record["final"] = {"checkpoint": str(args.final), "train_real": [c["case_id"] for c in real],
                           "summary": summary, "interpolate": args.interpolate}
        write_json(folds_file, record)

    if args.final and args.final_first:
        train_final()
    for i, fold in enumerate(record["folds"]):
        cases = [c for c in real if c["case_id"] not in fold["held_out"]] + others
        fold["summary"] = train(args.work, f"fold{i}", cases, fold_val, Path(fold["checkpoint"]),
                                f"{args.version}-fold{i}", start, cache, passed)
        write_json(folds_file, record)
    if args.interpolate is not None:
        write_json(args.work / f"folds-wise{args.interpolate:g}.json", {
            **record, "interpolate": {"with": str(args.init_from), "fine_tuned_weight": args.interpolate},
            "folds": [{**fold, "checkpoint": str(interpolated(Path(fold["checkpoint"])))} for fold in record["folds"]]})
    if args.final and not args.final_first:
        train_final()
    print(json.dumps({f"fold{i}": f["summary"].get("best_dice") for i, f in enumerate(record["folds"])}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
