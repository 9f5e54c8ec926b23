"""The server on a real Orthanc: MR studies listed over DICOMweb, segmented, and labels
written back as DICOM SEG next to the study; credentials never reach the logs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import SimpleITK as sitk
from monailabel.client import MONAILabelClient

from lib.activelearning.leases import LeaseBook
from lib.pacs.client import PacsClient, PacsConfig
from lib.pacs.sandbox import start_orthanc
from synthbrats import GeneratorConfig, generate_case, write_case
from synthbrats.dicom_export import StudyPlan, export_case

from _cases import write_label_like
from _server import REPO, monailabel_server

MODEL = "brats_segresnet"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pacs-server")
    uids = {}
    plans = {"complete": StudyPlan("philips", "Gadobutrol", ("localizer",), None),
             "no-flair": StudyPlan("generic", None, (), "t2f"),
             "unread": StudyPlan("siemens", "Gadoterate", (), None)}
    for i, (name, plan) in enumerate(plans.items()):
        case = write_case(generate_case(62, i, GeneratorConfig(spacing=2.0, style="brats")), root / "cases")
        uids[name] = export_case(case, root / "dicom", np.random.default_rng(i), plan)["study_uid"]
    with start_orthanc() as orthanc:
        orthanc.upload_folder(root / "dicom")
        log = root / "server.log"
        env = {"BTL_PACS_USERNAME": orthanc.username, "BTL_PACS_PASSWORD": orthanc.password}
        conf = {"cache_dir": str(root / "cache"), "model_dir": str(root / "model")}
        with monailabel_server(orthanc.dicomweb_url, log, conf=conf, env=env) as url:
            yield {"url": url, "orthanc": orthanc, "uids": uids, "log": log, "conf": conf, "env": env}


def _seg_series(orthanc, study_uid: str) -> list[dict]:
    client = PacsClient(PacsConfig(orthanc.dicomweb_url, orthanc.username, orthanc.password))
    return [s for s in client.series(study_uid, fields=("0008103E", "00080060"))
            if s.get("00080060", {}).get("Value") == ["SEG"]]


def test_infer_on_a_pacs_study_writes_an_automatic_seg_next_to_it(setup, tmp_path):
    client = MONAILabelClient(setup["url"], tmpdir=str(tmp_path))
    uid = setup["uids"]["complete"]
    assert client.info()["datastore"]["total"] == 3
    label_file, result = client.infer(MODEL, uid, {})
    label = sitk.ReadImage(label_file)
    assert set(np.unique(sitk.GetArrayFromImage(label))) <= {0, 1, 2, 3}
    segs = _seg_series(setup["orthanc"], uid)
    assert [s["0008103E"]["Value"][0] for s in segs] == ["BrainTumorLabel original v1"]
    # the clinician's correction, on the grid the server handed out
    client.save_label(uid, str(write_label_like(Path(label_file), tmp_path / "fixed.nii.gz", fill=2)), tag="final")
    descriptions = sorted(s["0008103E"]["Value"][0] for s in _seg_series(setup["orthanc"], uid))
    assert descriptions == ["BrainTumorLabel final v1", "BrainTumorLabel original v1"]
    assert client.info()["datastore"]["completed"] == 1
    assert result["model_version"]


def test_active_learning_on_the_pacs_keys_on_study_uids_and_survives_a_restart(setup, tmp_path):
    url, uid, cache = setup["url"], setup["uids"]["complete"], Path(setup["conf"]["cache_dir"])
    first = requests.post(f"{url}/activelearning/random", json={"client_id": "annotator-a"}, timeout=60).json()
    second = requests.post(f"{url}/activelearning/random", json={"client_id": "annotator-b"}, timeout=60).json()
    assert first["id"] == setup["uids"]["unread"] and (second or {}).get("id") != first["id"]
    assert {(lease.image_id, lease.client_id) for lease in LeaseBook(cache / "leases.json").current()} >= \
        {(first["id"], "annotator-a")}

    client = MONAILabelClient(url, tmpdir=str(tmp_path))
    label_file, result = client.infer(MODEL, uid, {})
    fixed = write_label_like(Path(label_file), tmp_path / "fixed.nii.gz", fill=2)
    client.save_label(uid, str(fixed), tag="final", params={"model_version": result["model_version"]})
    final_version = requests.get(f"{url}/btl/studies/{uid}/labels/final", timeout=30).json()[-1]["version"]
    effort = [r for r in requests.get(f"{url}/btl/effort", timeout=120).json()["rows"]
              if r["study"] == uid and r["final_version"] == final_version]
    assert len(effort) == 1 and effort[0]["model_version"] == result["model_version"]

    shutil.rmtree(cache / "labels")  # labels are read back from the PACS's SEG series from now on
    restart = tmp_path / "restart.log"
    with monailabel_server(setup["orthanc"].dicomweb_url, restart, conf=setup["conf"], env=setup["env"]) as again:
        assert effort[0] in requests.get(f"{again}/btl/effort", timeout=120).json()["rows"]
        started = requests.post(f"{again}/train/{MODEL}", timeout=60, json={
            "max_epochs": 1, "steps_per_epoch": 1, "roi_size": 32, "fine_tune": False})
        assert started.status_code == 200, started.text
        deadline = time.monotonic() + 600
        while (status := requests.get(f"{again}/train/", timeout=30).json())["status"] in ("SUBMITTED", "RUNNING"):
            assert time.monotonic() < deadline
            time.sleep(2)
        assert status["status"] == "DONE", status
        runs = [v for v in requests.get(f"{again}/btl/models", timeout=30).json()["versions"]
                if v["status"] != "bundled"]
        assert runs and runs[-1]["labels"] == {uid: final_version}  # keyed on the StudyInstanceUID
    assert (cache / "labels").is_dir()  # fetched again from Orthanc for training


def test_a_signed_report_lands_in_the_pacs_next_to_the_study(setup, tmp_path):
    """After the correction above: draft, review every finding, sign; the Encapsulated PDF and
    the measurement SR are then series of the study in Orthanc."""
    uid, url = setup["uids"]["complete"], setup["url"]
    if not any("final" in s["0008103E"]["Value"][0] for s in _seg_series(setup["orthanc"], uid)):
        client = MONAILabelClient(url, tmpdir=str(tmp_path))
        label_file, _ = client.infer(MODEL, uid, {})
        client.save_label(uid, label_file, tag="final")
    draft = requests.post(f"{url}/btl/studies/{uid}/report", json={"steroid_dose": "none"}, timeout=300)
    assert draft.status_code == 200, draft.text
    assert draft.json()["header"].get("Patient ID")  # the header comes from the DICOM study
    for finding in draft.json()["findings"]:
        reviewed = requests.put(f"{url}/btl/studies/{uid}/report/findings/{finding['key']}",
                                json={"state": "approved"}, timeout=60)
        assert reviewed.status_code == 200, reviewed.text
    signed = requests.post(f"{url}/btl/studies/{uid}/report/sign", json={"impression": "Glioma."}, timeout=300)
    assert signed.status_code == 200, signed.text
    published = signed.json()["published"]
    pacs = PacsClient(PacsConfig(setup["orthanc"].dicomweb_url, setup["orthanc"].username,
                                 setup["orthanc"].password))
    modalities = {s["0020000E"]["Value"][0]: s["00080060"]["Value"][0] for s in pacs.series(uid, fields=("00080060",))}
    assert modalities[published["pdf_series"]] == "DOC" and modalities[published["sr_series"]] == "SR"


def test_a_patients_studies_are_found_on_the_pacs_by_id_name_and_accession(setup):
    """QIDO-RS on PatientID, PatientName and AccessionNumber (the generated patients: one per case)."""
    url, uids = setup["url"], setup["uids"]
    by_id = requests.get(f"{url}/btl/patients", params={"q": "SYN-00062-001"}, timeout=60).json()["patients"]
    assert [[s["study"] for s in p["studies"]] for p in by_id] == [[uids["no-flair"]]]
    assert by_id[0]["patient"]["name"] == "Synthetic^00062-001"
    by_name = requests.get(f"{url}/btl/patients", params={"q": "synthetic^00062"}, timeout=60).json()["patients"]
    assert sorted(s["study"] for p in by_name for s in p["studies"]) == sorted(uids.values())
    by_accession = requests.get(f"{url}/btl/patients", params={"q": "A00062002B"}, timeout=60).json()["patients"]
    assert [s["study"] for p in by_accession for s in p["studies"]] == [uids["unread"]]
    refused = requests.get(f"{url}/btl/patients", params={"q": "SYN*"}, timeout=60)
    assert refused.status_code == 422 and "wildcard" in refused.json()["detail"]


def test_a_segmented_and_reported_pacs_study_is_searchable(setup):
    """After the tests above segmented, corrected and reported the complete study."""
    url, uid = setup["url"], setup["uids"]["complete"]
    deadline = time.monotonic() + 300
    while (status := requests.get(f"{url}/btl/search/status", timeout=30).json())["pending"] or \
            status["studies"] < 1:
        assert time.monotonic() < deadline, status
        time.sleep(1)
    assert not status["problems"], status
    found = requests.get(f"{url}/btl/search", params={"q": "glioma", "mode": "keyword"}, timeout=60).json()["hits"]
    assert [h["study"] for h in found] == [uid] and found[0]["patient"]["id"] == "SYN-00062-000"
    alone = requests.get(f"{url}/btl/search/similar", params={"study": uid}, timeout=60)
    assert alone.status_code == 200 and alone.json()["hits"] == []  # the only segmented study


def test_an_incomplete_study_is_refused_with_the_reason(setup):
    response = requests.post(f"{setup['url']}/infer/{MODEL}", params={"image": setup["uids"]["no-flair"]}, timeout=60)
    assert response.status_code == 422 and "t2f" in response.json()["detail"]


def test_an_unknown_study_is_404(setup):
    response = requests.post(f"{setup['url']}/infer/{MODEL}", params={"image": "1.2.3.4.5"}, timeout=60)
    assert response.status_code == 404


def test_the_password_appears_in_no_log_answer_or_process_title(setup):
    password = setup["orthanc"].password
    answers = [requests.get(f"{setup['url']}{path}", timeout=60).text
               for path in ("/info/", "/datastore/?output=all", "/train/", "/btl/audit",
                            f"/datastore/image/info?image={setup['uids']['complete']}")]
    assert all(password not in answer for answer in answers)
    assert password not in setup["log"].read_text(errors="replace")
    for log in (REPO / "monailabel_app" / "logs").glob("*.log*"):
        assert password not in log.read_text(errors="replace"), log
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert password not in cmdline.read_bytes().decode(errors="replace"), cmdline
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue


def test_a_password_in_the_pacs_address_is_refused_before_anything_logs_it(tmp_path):
    secret = "s3cret-in-the-url"
    started = subprocess.run([str(Path(sys.executable).parent / "btl-server"), "--studies",
                              f"http://btl:{secret}@127.0.0.1:9/dicom-web", "--port", "1"],
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 2 and "BTL_PACS_PASSWORD" in started.stderr
    assert secret not in started.stdout + started.stderr


@pytest.mark.parametrize("image", ["abc", "1.2.abc", "0001.2", "9" * 65])
def test_an_id_that_is_not_a_dicom_uid_is_a_404_naming_why_on_every_clinician_route(setup, image):
    url = setup["url"]
    answers = [requests.post(f"{url}/infer/{MODEL}", params={"image": image, "output": "json"}, timeout=60),
               requests.get(f"{url}/datastore/image/info", params={"image": image}, timeout=60),
               requests.get(f"{url}/datastore/image", params={"image": image}, timeout=60),
               requests.get(f"{url}/datastore/label", params={"label": image, "tag": "final"}, timeout=60),
               requests.get(f"{url}/btl/studies/{image}/labels/final", timeout=60),
               requests.get(f"{url}/btl/studies/{image}/sequences/t1c", timeout=60),
               requests.post(f"{url}/btl/studies/{image}/report", json={"prior": None}, timeout=60)]
    for answer in answers:
        assert answer.status_code == 404, (answer.request.url, answer.status_code, answer.text[:300])
        assert "DICOM StudyInstanceUID" in answer.json()["detail"]
