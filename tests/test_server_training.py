"""Training through the official client: submit corrections, train on them in the server's
background process; a model worse than the served one is kept as a candidate, not served."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import requests
from monailabel.client import MONAILabelClient

from lib.trainers.lock import TrainerLock

from _cases import make_studies, truth_path
from _http import call, detail
from _server import monailabel_process, monailabel_server

MODEL = "brats_segresnet"
#: one epoch of one step on small patches: the whole loop in about a minute on two cores
#: (publication compares on the one validation case of three studies)
TINY_RUN = {"max_epochs": 1, "steps_per_epoch": 1, "roi_size": 32, "fine_tune": False, "val_fraction": 0.3,
            "min_validation_cases": 1}


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("studies")
    make_studies(root, 3, seed=44)
    return root


@pytest.fixture(scope="module")
def client(studies, tmp_path_factory) -> MONAILabelClient:
    with monailabel_server(studies, tmp_path_factory.mktemp("log") / "server.log") as url:
        yield MONAILabelClient(url, tmpdir=str(tmp_path_factory.mktemp("client")))


def _wait_until_finished(client: MONAILabelClient, timeout_s: float = 600) -> dict:
    deadline = time.monotonic() + timeout_s
    while (status := client.train_status())["status"] in ("SUBMITTED", "RUNNING"):
        assert time.monotonic() < deadline, "training did not finish in time"
        time.sleep(1)
    return status


def test_training_on_submitted_labels_never_replaces_a_better_model(client, studies):
    bundled_version = client.info()["models"][MODEL]["model_version"]
    refused = call(client.get_server_url(), "POST", f"/train/{MODEL}", body=json.dumps(TINY_RUN).encode(),
                   content_type="application/json")  # nothing to train on yet
    assert refused[0] == 409 and "no study has a final label" in detail(refused)
    for case in sorted(p for p in studies.iterdir() if p.name.startswith("SynBraTS")):
        client.save_label(case.name, str(truth_path(case)), tag="final")
    client.train_start(MODEL, TINY_RUN)  # one step from scratch: worse than the bundled model
    status = _wait_until_finished(client)
    assert status["status"] == "DONE", status
    model_dir = studies / ".braintumorlabel" / "model"
    assert (model_dir / f"{MODEL}.candidate.pt").is_file() and not (model_dir / f"{MODEL}.pt").exists()
    split = (model_dir / "split.json").read_text()
    assert split.count("validation") >= 1 and split.count("train") >= 1
    info = client.info()
    assert info["models"][MODEL]["model_version"] == bundled_version
    stats = info["train_stats"][MODEL]
    assert set(stats["best_dice"]) == {"WT", "TC", "ET"}
    assert stats["publication"]["published"] is False and "below the served model" in stats["publication"]["reason"]


def test_the_registry_lists_each_run_and_an_admin_serves_any_version_without_a_restart(client, studies):
    url = client.get_server_url()
    registry = requests.get(f"{url}/btl/models", timeout=30).json()
    bundled = registry["served"]
    by_version = {v["version"]: v for v in registry["versions"]}
    (candidate,) = [v for v in by_version.values() if v["status"] == "candidate"]  # the worse run above
    assert by_version[bundled]["status"] == "bundled" and by_version[bundled]["served"] is True
    split = json.loads((studies / ".braintumorlabel" / "model" / "split.json").read_text())["assignment"]
    assert candidate["labels"] == {s: 1 for s in split}  # study: label version
    assert candidate["validation_cases"] == [s for s, role in split.items() if role == "validation"]
    assert set(candidate["validation_dice"]) == {"WT", "TC", "ET"} and candidate["served_dice"]

    chosen = requests.post(f"{url}/btl/admin/models/{candidate['version']}/serve", json={"reason": "compare"},
                           timeout=60)
    assert chosen.status_code == 200 and chosen.json()["served"] == candidate["version"]
    assert client.info()["models"][MODEL]["model_version"] == candidate["version"]  # same process, next request
    back = requests.post(f"{url}/btl/admin/models/{bundled}/serve", json={}, timeout=60)
    assert back.status_code == 200 and client.info()["models"][MODEL]["model_version"] == bundled
    history = requests.get(f"{url}/btl/models", timeout=30).json()["history"]
    assert [h["version"] for h in history[-2:]] == [candidate["version"], bundled]
    assert history[-2]["reason"] == "compare"
    unknown = requests.post(f"{url}/btl/admin/models/no-such-version/serve", json={}, timeout=30)
    assert unknown.status_code == 404 and "unknown model version" in unknown.json()["detail"]
    served = [e for e in requests.get(f"{url}/btl/audit", params={"action": "model.serve"}, timeout=30).json()]
    assert [e["detail"]["version"] for e in served][-2:] == [candidate["version"], bundled]


def test_a_running_training_can_be_stopped_and_a_label_sent_meanwhile_trains_the_next_round(client, studies):
    url = client.get_server_url()
    client.train_start(MODEL, {**TINY_RUN, "max_epochs": 500})
    deadline = time.monotonic() + 120
    while TrainerLock(studies / ".braintumorlabel" / "model" / "trainer.lock").holder() is None:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    bundled = requests.get(f"{url}/btl/models", timeout=30).json()["served"]
    refused = requests.post(f"{url}/btl/admin/models/{bundled}/serve", json={}, timeout=30)
    assert refused.status_code == 409 and "training is running" in refused.json()["detail"]
    study = sorted(p for p in studies.iterdir() if p.name.startswith("SynBraTS"))[0]
    client.save_label(study.name, str(truth_path(study)), tag="final")  # a correction arrives mid-run
    client.train_stop()
    assert _wait_until_finished(client, 60)["status"] == "STOPPED"
    assert client.info()["name"] == "BrainTumorLabel"

    versions = requests.get(f"{url}/btl/studies/{study.name}/labels/final", timeout=30).json()
    assert [v["version"] for v in versions] == [1, 2]  # kept
    client.train_start(MODEL, TINY_RUN)
    assert _wait_until_finished(client)["status"] == "DONE"
    newest = requests.get(f"{url}/btl/models", timeout=30).json()["versions"][-1]
    assert newest["labels"][study.name] == 2  # the next round used it


def test_a_trainer_orphaned_by_a_killed_server_blocks_a_second_one_until_it_is_gone(studies, tmp_path):
    work = studies / ".braintumorlabel" / "model"
    with monailabel_process(studies, tmp_path / "first.log") as (url, server):
        client = MONAILabelClient(url, tmpdir=str(tmp_path))
        for case in sorted(p for p in studies.iterdir() if p.name.startswith("SynBraTS")):
            client.save_label(case.name, str(truth_path(case)), tag="final")
        client.train_start(MODEL, {**TINY_RUN, "max_epochs": 500})
        deadline = time.monotonic() + 120
        while TrainerLock(work / "trainer.lock").holder() is None:  # the trainer holds the lock once it runs
            assert time.monotonic() < deadline
            time.sleep(0.5)
        orphan = int(json.loads((work / "trainer.lock").read_text())["pid"])
        registry = (work / "registry.json").read_bytes()
        os.kill(server.pid, signal.SIGKILL)  # the server dies; its trainer runs on
        server.wait(30)
    try:
        with monailabel_server(studies, tmp_path / "second.log") as url:
            status, body = call(url, "POST", f"/train/{MODEL}", body=json.dumps(TINY_RUN).encode(),
                                content_type="application/json")
            assert status == 409 and str(orphan) in body.decode()
            os.kill(orphan, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while _alive(orphan):
                assert time.monotonic() < deadline
                time.sleep(0.2)
            stats = json.loads(call(url, "GET", "/info/")[1])["train_stats"][MODEL]
            assert stats["state"] == "INTERRUPTED"  # not RUNNING forever
            assert (work / "registry.json").read_bytes() == registry  # the killed run left it as it was
            status, _ = call(url, "POST", f"/train/{MODEL}", body=json.dumps(TINY_RUN).encode(),
                             content_type="application/json")
            assert status == 200  # the stale lock is taken over
            MONAILabelClient(url, tmpdir=str(tmp_path)).train_stop()
    finally:
        if _alive(orphan):
            os.kill(orphan, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()
