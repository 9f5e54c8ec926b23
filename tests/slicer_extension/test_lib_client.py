"""The Slicer module's server client against a real server process: every call the module makes,
and the failures a user meets (server down or stopping, a study missing a sequence, a refused
submit), each a typed error whose message names the problem and never a password. Standard
library and pytest only here (Slicer's Pythons); the data is made on the server's (``_server_side``)."""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from _server import free_loopback_port, monailabel_process, monailabel_server
from _server_side import task
from BrainTumorLabelLib.client import (
    RequestRefused,
    ServerClient,
    ServerError,
    ServerUnreachable,
)
from BrainTumorLabelLib.dicom import series_attributes
from BrainTumorLabelLib.jobs import Jobs, JobState
from BrainTumorLabelLib.submissions import SubmissionLedger, label_digest

MODEL = "brats_segresnet"


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("studies")
    task("make_studies", root=root, n=3, seed=46, drop={"2": "t2f"})  # the third cannot be segmented
    return root


@pytest.fixture(scope="module")
def client(studies, tmp_path_factory) -> ServerClient:
    with monailabel_server(studies, tmp_path_factory.mktemp("log") / "server.log") as url:
        yield ServerClient(url)


def t1c_path(study: Path) -> Path:
    return next(study.glob("*-t1c.nii.gz"))


def _ids(studies: Path) -> list[str]:
    return sorted(p.name for p in studies.iterdir() if p.name.startswith("SynBraTS"))


def test_the_studies_table_says_what_can_be_segmented_and_why_not(client, studies):
    rows = {r.image_id: r for r in client.studies()}
    complete, incomplete = _ids(studies)[:2], _ids(studies)[2]
    assert sorted(rows) == _ids(studies)
    assert all(rows[i].can_segment and rows[i].sequences == ("t1n", "t1c", "t2w", "t2f") for i in complete)
    assert not rows[incomplete].can_segment and "t2f" in rows[incomplete].problem
    assert MODEL in client.info()["models"] and "random" in client.strategies()


def test_a_studys_four_sequences_download_as_they_are_stored(client, studies, tmp_path):
    image_id = _ids(studies)[0]
    files = client.download_sequences(image_id, tmp_path)
    for sequence, path in files.items():
        source = next((studies / image_id).glob(f"*-{sequence}.nii.gz"))
        assert path.read_bytes() == source.read_bytes()


def test_segment_then_submit_a_correction_with_who_and_when(client, studies, tmp_path):
    image_id = _ids(studies)[1]
    result = client.segment(image_id, MODEL, tmp_path)
    assert task("image_size", path=result.label_path) == task("image_size", path=t1c_path(studies / image_id))
    assert result.volumes_ml["WT"] > 0 and result.model_version
    assert not next(r for r in client.studies() if r.image_id == image_id).labelled  # model output is no label
    corrected = Path(task("write_label", study=studies / image_id, out=tmp_path / "final.nii.gz", truth=True))
    client.submit_label(image_id, corrected, {"user": "dr who", "submitted": "2026-11-30T10:00:00"})
    assert next(r for r in client.studies() if r.image_id == image_id).labelled
    info = client._json("GET", f"/datastore/label/info?label={image_id}&tag=final")
    assert (info["user"], info["submitted"]) == ("dr who", "2026-11-30T10:00:00")


def test_next_sample_offers_an_unlabelled_study_that_can_be_segmented(client, studies):
    assert client.next_sample("random", "annotator-1") in _ids(studies)[:2]


def test_a_study_missing_a_sequence_is_refused_with_the_reason(client, studies, tmp_path):
    with pytest.raises(RequestRefused, match="t2f") as refused:
        client.segment(_ids(studies)[2], MODEL, tmp_path)
    assert refused.value.status == 422


def test_a_refused_submit_changes_nothing_and_can_be_retried(client, studies, tmp_path):
    image_id = _ids(studies)[0]
    ledger = SubmissionLedger()
    bad = Path(task("write_label", study=studies / image_id, out=tmp_path / "bad.nii.gz", fill=7))
    with pytest.raises(RequestRefused, match=r"\[7\]"):
        client.submit_label(image_id, bad, {"user": "ann"})
    assert not next(r for r in client.studies() if r.image_id == image_id).labelled
    good = Path(task("write_label", study=studies / image_id, out=tmp_path / "good.nii.gz", fill=1))
    digest = label_digest(good.read_bytes(), ())
    assert not ledger.already_submitted(image_id, digest)
    client.submit_label(image_id, good, {"user": "ann"})
    ledger.record(image_id, digest)
    assert ledger.already_submitted(image_id, digest)  # the module does not send it a second time
    assert next(r for r in client.studies() if r.image_id == image_id).labelled


def test_sequences_in_slicers_dicom_database_are_picked_by_the_servers_rules(client, studies, tmp_path):
    exported = task("export_dicom", case=studies / _ids(studies)[0], out=tmp_path, seed=3)

    def read(file: str, tag: str) -> str:  # what ctkDICOMDatabase.fileValue returns: text, values split by \
        return exported_values.get(file, {}).get(tag, "")
    exported_values = {file: values for s in exported["series"] for file, values in s["values"].items()}
    series = [series_attributes(s["uid"], s["files"], read) for s in exported["series"]]
    assert set(exported["sequences"].values()) < {s["uid"] for s in series}  # and a localizer and a DWI
    found = client.identify_sequences(series)
    assert found["problem"] is None and found["sequences"] == exported["sequences"]


def test_training_starts_reports_and_stops(client):
    client.start_training(MODEL, {"max_epochs": 500, "steps_per_epoch": 1, "roi_size": 32})
    deadline = time.monotonic() + 120
    while client.training_status().get("status") not in ("RUNNING", "DONE", "ERROR"):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    client.stop_training()
    deadline = time.monotonic() + 120
    while client.training_status().get("status") == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert client.training_status()["status"] in ("STOPPED", "DONE", "ERROR")


def test_a_server_that_is_not_there_is_named_and_answers_quickly():
    client = ServerClient(f"http://127.0.0.1:{free_loopback_port()}", timeout_s=2)
    started = time.monotonic()
    with pytest.raises(ServerUnreachable, match="cannot reach http://127.0.0.1"):
        client.studies()
    assert time.monotonic() - started < 5


def test_a_password_in_the_address_is_refused_before_anything_is_sent():
    with pytest.raises(ServerError) as refused:
        ServerClient("http://admin:s3cret@127.0.0.1:8000")
    assert "s3cret" not in str(refused.value)


def test_a_server_stopping_mid_segmentation_fails_the_job_and_loses_nothing(studies, tmp_path):
    with monailabel_process(studies, tmp_path / "server.log") as (url, process):
        client = ServerClient(url, segment_timeout_s=60)
        job = Jobs().start("segment", lambda progress: client.segment(_ids(studies)[0], MODEL, tmp_path))
        time.sleep(0.5)
        os.killpg(process.pid, signal.SIGKILL)
        status = job.wait(90)
    assert status.state is JobState.FAILED and status.error.startswith(f"cannot reach {url}")
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/info/", timeout=2)
