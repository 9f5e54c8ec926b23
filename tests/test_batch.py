"""``btl-batch`` on a folder of generated studies, in its own process, with no broker: a corrupt
study fails alone and the exit status says so; a rerun finds every done study in the cache; a
new model version segments them again; bad arguments are refused before any work (btl-batch's
``main`` in this process)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lib.jobs.cli import main as batch_main
from lib.model.registry import BUNDLED_CHECKPOINT

from _cases import make_studies

BATCH = Path(sys.executable).parent / "btl-batch"


def _batch(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "BTL_BROKER_URL"}
    return subprocess.run([str(BATCH), *map(str, args)], capture_output=True, text=True, timeout=900,
                          env={**environment, **(env or {})})


def _rows(output: Path) -> dict[str, dict[str, str]]:
    with open(output / "cohort.csv", newline="") as fh:
        return {row["study"]: row for row in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("cohort")
    ids = make_studies(root / "studies", 6, seed=71)
    flair = next((root / "studies" / ids[3]).glob("*-t2f.nii.gz"))
    flair.write_bytes(flair.read_bytes()[:3000])  # a truncated file
    first = _batch("--input", root / "studies", "--output", root / "out")
    return {"root": root, "ids": ids, "corrupt": ids[3], "first": first}


def test_a_corrupt_study_fails_alone_and_the_exit_status_says_so(cohort):
    first, out = cohort["first"], cohort["root"] / "out"
    assert first.returncode == 1, first.stderr[-2000:]
    rows = _rows(out)
    assert sorted(rows) == sorted(cohort["ids"])
    assert [s for s, r in rows.items() if r["state"] == "done"] == [s for s in cohort["ids"] if s != cohort["corrupt"]]
    failed = rows[cohort["corrupt"]]
    assert failed["state"] == "failed" and f"{cohort['corrupt']}-t2f.nii.gz: cannot read image" in failed["error"]
    assert f"failed {cohort['corrupt']}" in first.stderr and "5 segmented, 0 cached, 1 failed" in first.stdout
    for study in rows:
        if study != cohort["corrupt"]:
            result = json.loads((out / study / f"{study}-result.json").read_text())
            assert result["state"] == "done" and result["volumes_ml"]["WT"] > 0 and result["key"]
            assert float(rows[study]["WT_ml"]) == pytest.approx(result["volumes_ml"]["WT"], abs=1e-3)
            assert (out / study / f"{study}-label.nii.gz").stat().st_size > 0
    summary = json.loads((out / "cohort.json").read_text())
    assert summary["model_version"] == rows[cohort["ids"][0]]["model_version"] and len(summary["rows"]) == 6
    assert (out / "cohort.png").read_bytes()[:4] == b"\x89PNG"


def test_a_rerun_segments_nothing_it_has(cohort):
    again = _batch("--input", cohort["root"] / "studies", "--output", cohort["root"] / "out")
    assert again.returncode == 1  # the corrupt study is tried again, and fails again
    assert "5 cached, 1 to segment" in again.stdout and "0 segmented, 5 cached, 1 failed" in again.stdout


def test_a_new_model_version_segments_them_again(cohort):
    model_dir = cohort["root"] / "studies" / ".braintumorlabel" / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    payload = torch.load(BUNDLED_CHECKPOINT, map_location="cpu", weights_only=True)
    payload["version"] = f"{payload['version']}-retrained"
    torch.save(payload, model_dir / "brats_segresnet.pt")  # what a server on this folder publishes
    third = _batch("--input", cohort["root"] / "studies", "--output", cohort["root"] / "out")
    assert "0 cached, 6 to segment" in third.stdout and "5 segmented, 0 cached, 1 failed" in third.stdout
    assert {r["model_version"] for s, r in _rows(cohort["root"] / "out").items() if s != cohort["corrupt"]} == \
        {payload["version"]}


def test_bad_arguments_are_refused_before_any_work(tmp_path, capsys, monkeypatch):
    # btl-batch's own main(), in this process: the command line is what the other tests run
    monkeypatch.delenv("BTL_BROKER_URL", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert batch_main(["--input", str(empty), "--output", str(tmp_path / "out")]) == 2
    assert "no studies in" in capsys.readouterr().err
    make_studies(tmp_path / "one", 1, seed=71)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert batch_main(["--input", str(tmp_path / "one"), "--output", str(blocker / "out")]) == 2
    assert "not writable" in capsys.readouterr().err
    assert batch_main(["--input", str(tmp_path / "one"), "--output", str(tmp_path / "out"), "--broker",
                       "amqp://btl:secret@127.0.0.1:9//"]) == 2
    refused = capsys.readouterr().err
    assert "cannot be reached" in refused and "secret" not in refused
    assert not list((tmp_path / "out").glob("*/*-label.nii.gz")) if (tmp_path / "out").exists() else True
