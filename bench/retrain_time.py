"""Retraining from corrections through a real server: ``--corrections`` generated studies get their
reference labels as final labels (the corrections), then ``POST /train`` with the default options
(the served model has a classifier, so the classifier is retrained on its network, which stays as
it is). Prints the seconds from the request to the finished run (``DONE``), whether the run was
published, and its validation Dice next to the served model's.

    .venv/bin/python bench/retrain_time.py --corrections 10 --out bench/results/retrain_time.json

``--extra-cases`` gives the server's ``train_extra_cases`` (folders every round also trains on):
a round from 10 corrections plus the real and generated training set of the shipped model
(``experiments/prepare_data.py``'s folders), as a site that keeps its training set would run it:

    .venv/bin/python bench/retrain_time.py --corrections 10 \
        --extra-cases data/real:data/extra:data/synth6v2:data/synth-old6 \
        --out bench/results/retrain_time_with_training_set.json

The issue's goal: a round from 10 new corrections in 10 minutes at most on this 2-core machine.
Studies: generated 2 mm cases (the classifier works on the 2 mm grid whatever the input's).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from _provenance import provenance, relative  # noqa: E402

from lib.atomic import write_json  # noqa: E402
from lib.model import load_checkpoint  # noqa: E402
from lib.model.registry import BUNDLED_CHECKPOINT  # noqa: E402

from _cases import make_studies, truth_path  # noqa: E402
from _server import monailabel_server  # noqa: E402

MODEL = "brats_segresnet"


def _no_machine_paths(value: Any) -> Any:
    """The registry's record with every absolute path made relative to the repository."""
    if isinstance(value, dict):
        return {k: _no_machine_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_machine_paths(v) for v in value]
    return relative(value) if isinstance(value, str) and value.startswith("/") else value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corrections", type=int, default=10)
    ap.add_argument("--timeout-s", type=float, default=3600.0)
    ap.add_argument("--extra-cases", help="':'-separated folders of labelled cases every round also trains on")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "retrain_time.json")
    args = ap.parse_args()
    extra = [folder for folder in (args.extra_cases or "").split(":") if folder]
    conf = {"train_extra_cases": ":".join(str(Path(f).resolve()) for f in extra)} if extra else None
    with tempfile.TemporaryDirectory(prefix="btl-retrain-bench-") as work:
        studies = Path(work) / "studies"
        make_studies(studies, args.corrections, seed=91)
        with monailabel_server(studies, Path(work) / "server.log", conf=conf, timeout_s=300) as url:
            for case in sorted(p for p in studies.iterdir() if p.name.startswith("SynBraTS")):
                with open(truth_path(case), "rb") as label:
                    saved = requests.put(f"{url}/datastore/label", params={"image": case.name, "tag": "final"},
                                         files={"label": ("final.nii.gz", label)}, timeout=300)
                saved.raise_for_status()
            started = time.monotonic()
            requests.post(f"{url}/train/{MODEL}", json={}, timeout=60).raise_for_status()
            while (status := requests.get(f"{url}/train/", timeout=60).json())["status"] in ("SUBMITTED", "RUNNING"):
                if time.monotonic() - started > args.timeout_s:
                    raise SystemExit(f"the run did not finish in {args.timeout_s:.0f} s")
                time.sleep(2)
            seconds = time.monotonic() - started
            models = requests.get(f"{url}/btl/models", timeout=60).json()
    result = {
        "provenance": provenance(BUNDLED_CHECKPOINT, load_checkpoint(BUNDLED_CHECKPOINT).version),
        "corrections": args.corrections, "study_size": "generated, 2 mm",
        "extra_cases": {folder: len([c for c in Path(folder).iterdir() if c.is_dir()]) for folder in extra},
        "train_options": "defaults (POST /train/brats_segresnet with {})",
        "status": status.get("status"), "seconds": round(seconds, 1), "goal_s": 600,
        "models": _no_machine_paths(models),
    }
    write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("provenance", "models")}, indent=1))
    print(json.dumps(models, indent=1)[:3000])


if __name__ == "__main__":
    main()
