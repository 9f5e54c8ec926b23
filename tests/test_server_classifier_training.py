"""Retraining the served model's voxel classifier from corrections through a real server: the
corrections go in as final labels, ``POST /train`` trains the classifier on the served network,
the run is registered and published only if it is not worse on the validation split."""

from __future__ import annotations

import time
from pathlib import Path

import requests
from test_classifier import TINY

from lib.model import load_checkpoint

from _cases import make_studies, truth_path
from _server import monailabel_server

MODEL = "brats_segresnet"
#: the classifier in a few trees; publication compares on the one validation case of four studies
TINY_CLASSIFIER_RUN = {"fine_tune": True, "classifier": True, "classifier_rounds": TINY.rounds,
                       "classifier_inner_folds": 2, "val_fraction": 0.25, "min_validation_cases": 1}


def test_corrections_retrain_the_classifier_and_the_rule_decides_what_is_served(tmp_path):
    studies = tmp_path / "studies"
    make_studies(studies, 4, seed=73)
    with monailabel_server(studies, tmp_path / "server.log") as url:
        served = requests.get(f"{url}/info/", timeout=30).json()["models"][MODEL]
        for case in sorted(p for p in studies.iterdir() if p.name.startswith("SynBraTS")):
            with open(truth_path(case), "rb") as label:
                saved = requests.put(f"{url}/datastore/label", params={"image": case.name, "tag": "final"},
                                     files={"label": ("final.nii.gz", label)}, timeout=120)
            assert saved.status_code == 200, saved.text
        started = requests.post(f"{url}/train/{MODEL}", json=TINY_CLASSIFIER_RUN, timeout=60)
        assert started.status_code == 200, started.text
        deadline = time.monotonic() + 600
        while (status := requests.get(f"{url}/train/", timeout=30).json())["status"] in ("SUBMITTED", "RUNNING"):
            assert time.monotonic() < deadline, "training did not finish in time"
            time.sleep(1)
        assert status["status"] == "DONE", status
        stats = requests.get(f"{url}/info/", timeout=30).json()["train_stats"][MODEL]
        assert stats["stopped_by"] == "classifier" and set(stats["best_dice"]) == {"WT", "TC", "ET"}
        publication = stats["publication"]
        assert set(publication["candidate_dice"]) == {"WT", "TC", "ET"} and publication["served_dice"]
        newest = requests.get(f"{url}/btl/models", timeout=30).json()["versions"][-1]
        assert newest["status"] == ("published" if publication["published"] else "candidate")
        assert newest["parent"] == served["model_version"]
        trained = load_checkpoint(Path(publication["checkpoint"]))
        assert trained.classifier is not None and trained.version == newest["version"]
        assert trained.classifier.training["config"]["classifier_rounds"] == TINY.rounds
        served_now = requests.get(f"{url}/info/", timeout=30).json()["models"][MODEL]["model_version"]
        assert served_now == (newest["version"] if publication["published"] else served["model_version"])

