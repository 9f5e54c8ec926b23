"""The study-level DICOMweb datastore against a real Orthanc: listing, sequence identification,
volumes, SEG write-back with versions, cache invalidation, and a PACS that stops answering."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from lib.datastore.dicomweb import DicomWebStudyDatastore
from lib.errors import MissingSequenceError, PacsUnavailableError
from lib.pacs.client import PacsClient, PacsConfig
from lib.pacs.sandbox import start_orthanc
from lib.transforms.geometry import reorient_to_ras
from synthbrats import GeneratorConfig, generate_case, write_case
from synthbrats.dicom_export import StudyPlan, export_case

from _cases import write_label_like

PLANS = {
    "complete": StudyPlan("ge", "Gadobutrol", ("localizer", "dwi"), None),
    "no-flair": StudyPlan("siemens", None, (), "t2f"),
    "ambiguous-t1": StudyPlan("undescribed", None, (), None),
}


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pacs")
    studies = {}
    for i, (name, plan) in enumerate(PLANS.items()):
        case = write_case(generate_case(61, i, GeneratorConfig(spacing=2.0, style="raw")), root / "cases")
        record = export_case(case, root / "dicom", np.random.default_rng(i), plan)
        studies[name] = {"uid": record["study_uid"], "case": case, "dicom": root / "dicom" / case.name}
    with start_orthanc() as orthanc:
        for name in ("complete", "no-flair", "ambiguous-t1"):
            orthanc.upload_folder(studies[name]["dicom"])
        yield orthanc, studies


def _store(orthanc, cache: Path, **config) -> DicomWebStudyDatastore:
    settings = PacsConfig(orthanc.dicomweb_url, orthanc.username, orthanc.password, **config)
    return DicomWebStudyDatastore(PacsClient(settings), cache)


def test_one_image_per_mr_study_with_its_sequences_or_the_reason(pacs, tmp_path):
    orthanc, studies = pacs
    store = _store(orthanc, tmp_path)
    assert sorted(store.list_images()) == sorted(s["uid"] for s in studies.values())
    complete = store.get_image_info(studies["complete"]["uid"])
    assert sorted(complete["sequences"]) == ["t1c", "t1n", "t2f", "t2w"] and "problem" not in complete
    assert "no t2f series" in store.get_image_info(studies["no-flair"]["uid"])["problem"]
    assert "contrast information" in store.get_image_info(studies["ambiguous-t1"]["uid"])["problem"]
    with pytest.raises(MissingSequenceError, match="t2f"):
        store.study_path(studies["no-flair"]["uid"])


def test_volumes_fetched_with_wado_equal_the_source_nifti(pacs, tmp_path):
    orthanc, studies = pacs
    store = _store(orthanc, tmp_path)
    folder = store.study_path(studies["complete"]["uid"])
    for seq in ("t1n", "t1c", "t2w", "t2f"):
        built = reorient_to_ras(sitk.ReadImage(str(next(folder.glob(f"*-{seq}.nii.gz")))))
        source = reorient_to_ras(sitk.ReadImage(str(next(studies["complete"]["case"].glob(f"*-{seq}.nii.gz"))),
                                                sitk.sitkFloat32))
        assert np.array_equal(sitk.GetArrayFromImage(built), sitk.GetArrayFromImage(source)), seq
        assert np.allclose(built.GetOrigin(), source.GetOrigin(), atol=1e-3)


def test_a_saved_label_becomes_a_seg_in_the_pacs_and_reads_back_voxel_for_voxel(pacs, tmp_path):
    orthanc, studies = pacs
    uid = studies["complete"]["uid"]
    store = _store(orthanc, tmp_path / "a")
    t1c = Path(store.get_image_uri(uid))
    values = (np.arange(np.prod(sitk.ReadImage(str(t1c)).GetSize())) % 4).astype(np.uint8)
    values = values.reshape(tuple(reversed(sitk.ReadImage(str(t1c)).GetSize())))
    before = store.status()["completed"]
    store.save_label(uid, str(write_label_like(t1c, tmp_path / "first.nii.gz", values=values)), "final", {})
    assert store.status()["completed"] == before + 1
    store.save_label(uid, str(write_label_like(t1c, tmp_path / "second.nii.gz", fill=2)), "final", {})
    fresh = _store(orthanc, tmp_path / "b")  # nothing cached: everything comes from the PACS
    assert [v.version for v in fresh.label_versions(uid, "final")] == [1, 2]
    assert (sitk.GetArrayFromImage(sitk.ReadImage(fresh.get_label_uri(uid, "final"))) == 2).all()
    first_seg = fresh.study_record(uid).labels["final"][0]["series"]
    seg = orthanc_series(orthanc, uid, first_seg)
    assert seg.Modality == "SEG" and seg.SeriesDescription == "BrainTumorLabel final v1"
    assert {s.SegmentAlgorithmType for s in seg.SegmentSequence} == {"MANUAL"}
    from lib.dicom.seg import seg_to_label
    assert np.array_equal(seg_to_label(seg, fresh._t1c_headers(uid)), values)
    if shutil.which("dciodvfy"):
        path = tmp_path / "seg.dcm"
        seg.save_as(str(path))
        out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        assert "Error" not in out.stdout + out.stderr


def orthanc_series(orthanc, study_uid: str, series_uid: str) -> pydicom.Dataset:
    client = PacsClient(PacsConfig(orthanc.dicomweb_url, orthanc.username, orthanc.password))
    return client.retrieve_series(study_uid, series_uid)[0]


def test_the_cache_is_rebuilt_when_the_study_changes_in_the_pacs(pacs, tmp_path):
    orthanc, studies = pacs
    uid = studies["no-flair"]["uid"]
    store = _store(orthanc, tmp_path)
    assert store.get_image_info(uid)["problem"]
    # the missing FLAIR arrives later, as its own series of the same study
    complete = export_case(studies["no-flair"]["case"], tmp_path / "again", np.random.default_rng(5),
                           StudyPlan("siemens", None, (), None))
    flair = next((tmp_path / "again" / studies["no-flair"]["case"].name).glob("*-t2f"))
    for f in sorted(flair.glob("*.dcm")):
        ds = pydicom.dcmread(f)
        ds.StudyInstanceUID = uid
        ds.save_as(str(f))
    assert complete["series"]["t2f"]
    orthanc.upload_folder(flair)
    info = store.get_image_info(uid)
    assert "problem" not in info and "t2f" in info["sequences"]


def test_a_pacs_that_stops_answering_loses_no_label(pacs, tmp_path):
    orthanc, studies = pacs
    uid = studies["complete"]["uid"]
    patient = _store(orthanc, tmp_path)  # the study is cached before the PACS hangs, at an unhurried pace
    t1c = Path(patient.get_image_uri(uid))
    versions_before = len(patient.label_versions(uid, "original"))
    labelled_before = patient.status()["label_tags"].get("original", 0)
    store = _store(orthanc, tmp_path, timeout_s=1.0, retries=1, backoff_s=0.1)  # the same cache
    orthanc.pause()
    try:
        started = time.monotonic()
        with pytest.raises(PacsUnavailableError, match="not reachable") as error:
            store.client.studies()
        assert time.monotonic() - started < 30
        assert orthanc.password not in str(error.value)
        store.save_label(uid, str(write_label_like(t1c, tmp_path / "l.nii.gz", fill=3)), "original",
                         {"model_version": "test"})
        status = store.status()
        assert (status["outbox"], status["pacs_available"]) == (1, False)
        assert status["label_tags"]["original"] == max(labelled_before, 1)
        assert len(store.label_versions(uid, "original")) == versions_before + 1
    finally:
        orthanc.resume()
    _wait_until_answering(store)
    assert store.list_images() and store.status()["outbox"] == 1  # listing sends nothing
    store.start_outbox_sender(interval_s=0.2)  # what the server runs
    try:
        deadline = time.monotonic() + 30
        while store.status()["outbox"] and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        store.stop_outbox_sender()
    assert store.status()["outbox"] == 0
    fresh = _store(orthanc, tmp_path / "fresh")
    assert len(fresh.label_versions(uid, "original")) == versions_before + 1


def _wait_until_answering(store: DicomWebStudyDatastore, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            store.client.studies()
            store.refresh()
            return
        except PacsUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_an_outbox_entry_the_pacs_cannot_take_is_set_aside_and_blocks_no_later_label(pacs, tmp_path):
    orthanc, studies = pacs
    uid = studies["complete"]["uid"]
    store = _store(orthanc, tmp_path)
    t1c = Path(store.get_image_uri(uid))
    (store.outbox / f"0-{uid}-final-v0999.dcm").write_bytes(b"not a DICOM file")  # oldest in the outbox
    before = len(store.label_versions(uid, "original"))
    store.save_label(uid, str(write_label_like(t1c, tmp_path / "l.nii.gz", fill=1)), "original",
                     {"model_version": "test"})
    status = store.status()
    assert (status["outbox"], status["outbox_refused"]) == (0, 1)
    assert len(_store(orthanc, tmp_path / "fresh").label_versions(uid, "original")) == before + 1


def test_a_study_filter_narrows_the_listing_to_matching_studies(pacs, tmp_path):
    orthanc, studies = pacs
    patient = pydicom.dcmread(next(studies["complete"]["dicom"].rglob("*.dcm"))).PatientID
    settings = PacsConfig(orthanc.dicomweb_url, orthanc.username, orthanc.password)
    store = DicomWebStudyDatastore(PacsClient(settings), tmp_path, study_filter={"PatientID": patient})
    assert store.list_images() == [studies["complete"]["uid"]]


def _listening_ports(pid: int) -> set[int]:
    """TCP ports process ``pid`` listens on (its socket inodes matched in /proc/net/tcp{,6})."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_the_sandbox_orthanc_opens_its_http_port_only_and_refuses_other_computers(pacs):
    orthanc, _ = pacs
    assert _listening_ports(orthanc.process.pid) == {orthanc.http_port}  # no DICOM (DIMSE) port
    config = json.loads((orthanc.folder / "orthanc.json").read_text())
    assert config["RemoteAccessAllowed"] is False and config["AuthenticationEnabled"] is True
