"""The study datastore contract (lib/datastore/base.py), run against both implementations: the
local folder and the DICOMweb PACS (a real Orthanc, with its index in SQLite and, as a large
archive keeps it, in a real PostgreSQL). Each test is one behaviour that the app, training and
the Slicer module rely on, whatever the datastore."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lib.datastore.base import FINAL, ORIGINAL, StudyDatastore
from lib.datastore.dicomweb import DicomWebStudyDatastore
from lib.datastore.study_folder import StudyFolderDatastore
from lib.errors import ConflictError, InputError, InvalidLabelError, MissingSequenceError, UnknownIdError
from lib.pacs.client import PacsClient, PacsConfig
from lib.pacs.sandbox import start_orthanc, start_postgresql
from lib.transforms import find_case_files
from synthbrats.dicom_export import StudyPlan, export_case

from _cases import make_studies, write_label_like


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> Path:
    """Three generated studies; each datastore gets the last one without its FLAIR."""
    folder = tmp_path_factory.mktemp("contract-cases")
    make_studies(folder, 3, seed=71)
    return folder


@pytest.fixture(scope="module")
def dicom(cases, tmp_path_factory) -> tuple[Path, list[str]]:
    """The studies as DICOM; the last one without its FLAIR series."""
    folder = tmp_path_factory.mktemp("contract-dicom")
    uids = []
    for i, case in enumerate(sorted(p for p in cases.iterdir() if p.is_dir())):
        plan = StudyPlan("siemens", "Gadobutrol", (), "t2f" if i == 2 else None)
        uids.append(export_case(case, folder, np.random.default_rng(i), plan)["study_uid"])
    return folder, uids


@pytest.fixture(scope="module")
def orthanc(dicom):
    with start_orthanc() as sandbox:
        sandbox.upload_folder(dicom[0])
        yield sandbox, dicom[1]


@pytest.fixture(scope="module")
def orthanc_postgresql(dicom):
    with start_postgresql() as database, start_orthanc(postgresql=database) as sandbox:
        assert "PostgreSQL" in json.loads(sandbox.request("/system"))["DatabaseBackendPlugin"]
        sandbox.upload_folder(dicom[0])
        yield sandbox, dicom[1]


@dataclass
class Subject:
    """A datastore under test: its complete studies, one that lacks a sequence, and how to open
    the same storage again (a restarted server)."""

    store: StudyDatastore
    complete: list[str]
    incomplete: str
    reopen: Callable[[], StudyDatastore]
    removes_labels: bool


@pytest.fixture(params=["folder", "pacs", "pacs on postgresql"])
def subject(request, cases, tmp_path) -> Subject:
    if request.param == "folder":
        root = Path(shutil.copytree(cases, tmp_path / "studies"))
        ids = sorted(p.name for p in root.iterdir() if p.is_dir())
        next((root / ids[2]).glob("*-t2f.nii.gz")).unlink()
        return Subject(StudyFolderDatastore(root), ids[:2], ids[2], lambda: StudyFolderDatastore(root), True)
    sandbox, uids = request.getfixturevalue("orthanc" if request.param == "pacs" else "orthanc_postgresql")
    sandbox.delete_series("SEG")  # every test starts without labels in the PACS

    def opened(cache: Path) -> DicomWebStudyDatastore:
        return DicomWebStudyDatastore(PacsClient(PacsConfig(sandbox.dicomweb_url, sandbox.username,
                                                            sandbox.password)), cache)
    count = iter(range(100))
    return Subject(opened(tmp_path / "cache"), uids[:2], uids[2], lambda: opened(tmp_path / f"fresh-{next(count)}"),
                   False)


def _label(subject: Subject, image_id: str, tmp_path: Path, name: str, **kwargs) -> str:
    reference = Path(subject.store.get_image_uri(image_id))
    return str(write_label_like(reference, tmp_path / f"{name}.nii.gz", **kwargs))


def _values(path: str) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(path))


def test_each_study_is_one_image(subject):
    assert sorted(subject.store.list_images()) == sorted([*subject.complete, subject.incomplete])


def test_info_names_the_four_sequences_or_the_problem(subject):
    assert sorted(subject.store.get_image_info(subject.complete[0])["sequences"]) == ["t1c", "t1n", "t2f", "t2w"]
    assert "t2f" in subject.store.get_image_info(subject.incomplete)["problem"]
    assert subject.store.study_problem(subject.incomplete) and not subject.store.study_problem(subject.complete[0])


def test_the_study_path_is_a_complete_case_the_preprocessing_reads(subject):
    files = find_case_files(subject.store.study_path(subject.complete[0]))
    assert files.sequences is not None and sorted(files.sequences) == ["t1c", "t1n", "t2f", "t2w"]
    with pytest.raises(MissingSequenceError, match="t2f"):
        subject.store.study_path(subject.incomplete)


def test_an_unknown_study_is_an_unknown_id(subject):
    unknown = "1.2.826.0.1.3680043.8.498.1" if not subject.removes_labels else "no-such-study"
    for call in (subject.store.study_path, subject.store.get_image_info, subject.store.get_image_uri):
        with pytest.raises(UnknownIdError):
            call(unknown)


def test_every_version_is_kept_and_readable_after_a_restart(subject, tmp_path):
    image_id = subject.complete[0]
    first = _label(subject, image_id, tmp_path, "first", fill=1)
    second = _label(subject, image_id, tmp_path, "second", fill=3)
    subject.store.save_label(image_id, first, FINAL, {"user": "ann"})
    subject.store.save_label(image_id, second, FINAL, {"user": "bob"})
    reopened = subject.reopen()
    assert [v.version for v in reopened.label_versions(image_id, FINAL)] == [1, 2]
    assert (_values(reopened.label_version_uri(image_id, FINAL, 1)) == 1).all()
    assert (_values(reopened.get_label_uri(image_id, FINAL)) == 3).all()
    info = subject.store.get_label_info(image_id, FINAL)
    assert (info["version"], info["versions"], info["user"]) == (2, 2, "bob")


def test_only_final_labels_make_a_study_labelled_and_train(subject, tmp_path):
    image_id, other = subject.complete
    subject.store.save_label(image_id, _label(subject, image_id, tmp_path, "model", fill=2), ORIGINAL, {})
    assert subject.store.get_labeled_images() == [] and subject.store.datalist() == []
    subject.store.save_label(image_id, _label(subject, image_id, tmp_path, "fixed", fill=1), FINAL, {})
    assert subject.store.get_labeled_images() == [image_id]
    assert subject.store.get_unlabeled_images() == [other]  # the incomplete study is not offered
    assert subject.store.label_tags(image_id) == [FINAL, ORIGINAL]
    status = subject.store.status()
    assert (status["total"], status["completed"], status["label_tags"]) == (3, 1, {FINAL: 1, ORIGINAL: 1})
    [pair] = subject.store.datalist()
    assert pair["case_id"] == image_id and (_values(pair["label"]) == 1).all()
    assert find_case_files(pair["image"]).sequences is not None


@pytest.mark.parametrize("problem", ["value 5", "other grid", "not an image"])
def test_a_bad_label_is_refused_and_changes_nothing(subject, tmp_path, problem):
    image_id = subject.complete[0]
    if problem == "value 5":
        bad = _label(subject, image_id, tmp_path, "bad", fill=5)
    elif problem == "other grid":
        small = sitk.Image([20, 20, 20], sitk.sitkUInt8)
        bad = str(tmp_path / "bad.nii.gz")
        sitk.WriteImage(small, bad)
    else:
        bad = str(tmp_path / "bad.nii.gz")
        Path(bad).write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(InvalidLabelError):
        subject.store.save_label(image_id, bad, FINAL, {})
    assert subject.store.label_versions(image_id, FINAL) == [] and subject.store.label_tags(image_id) == []


@pytest.mark.parametrize("tag", ["../x", "a/b", "x" * 65, "a\0b", ".hidden", "final v2"])
def test_a_bad_tag_is_refused_and_changes_nothing(subject, tmp_path, tag):
    image_id = subject.complete[0]
    with pytest.raises(InputError, match="not a valid label tag"):
        subject.store.save_label(image_id, _label(subject, image_id, tmp_path, "l", fill=1), tag, {})
    with pytest.raises(InputError):
        subject.store.get_label_info(image_id, tag)
    assert subject.store.label_tags(image_id) == []


def test_a_label_for_an_unknown_study_is_refused(subject, tmp_path):
    label = _label(subject, subject.complete[0], tmp_path, "l", fill=1)
    unknown = "1.2.826.0.1.3680043.8.498.1" if not subject.removes_labels else "no-such-study"
    with pytest.raises(UnknownIdError):
        subject.store.save_label(unknown, label, FINAL, {})


def test_a_missing_label_or_version_is_an_unknown_id(subject, tmp_path):
    image_id = subject.complete[0]
    with pytest.raises(UnknownIdError):
        subject.store.get_label_uri(image_id, FINAL)
    subject.store.save_label(image_id, _label(subject, image_id, tmp_path, "l", fill=1), FINAL, {})
    with pytest.raises(UnknownIdError):
        subject.store.label_version_uri(image_id, FINAL, 7)


def test_amending_a_labels_record_makes_a_new_version_and_keeps_the_old(subject, tmp_path):
    image_id = subject.complete[0]
    subject.store.save_label(image_id, _label(subject, image_id, tmp_path, "l", fill=1), FINAL, {"user": "ann"})
    subject.store.update_label_info(image_id, FINAL, {"reviewed": True})
    reopened = subject.reopen()
    for version in (1, 2):
        reopened.label_version_uri(image_id, FINAL, version)  # a PACS-only version is fetched with its record
    versions = reopened.label_versions(image_id, FINAL)
    assert [v.version for v in versions] == [1, 2] and "reviewed" not in versions[0].info
    assert (versions[1].info["reviewed"], versions[1].info["user"], versions[1].info["info_of_version"]) == \
        (True, "ann", 1)
    assert (_values(subject.store.label_version_uri(image_id, FINAL, 2)) == 1).all()


def test_a_correction_records_the_model_output_it_started_from(subject, tmp_path):
    image_id = subject.complete[0]
    subject.store.save_label(image_id, _label(subject, image_id, tmp_path, "m", fill=2), ORIGINAL,
                             {"model_version": "model-7"})
    subject.store.save_label(image_id, _label(subject, image_id, tmp_path, "f", fill=1), FINAL, {"user": "ann"})
    info = subject.store.get_label_info(image_id, FINAL)
    assert (info["model_version"], info["original_version"], info["user"]) == ("model-7", 1, "ann")
    assert info["ts"] > 0


def test_removing_a_label_moves_it_aside_or_is_refused_and_keeps_it(subject, tmp_path):
    image_id = subject.complete[0]
    subject.store.save_label(image_id, _label(subject, image_id, tmp_path, "l", fill=1), FINAL, {})
    if subject.removes_labels:
        subject.store.remove_label(image_id, FINAL)
        assert subject.store.get_labeled_images() == []
    else:
        with pytest.raises(ConflictError):
            subject.store.remove_label(image_id, FINAL)
        assert subject.store.get_labeled_images() == [image_id]


def test_concurrent_saves_get_distinct_versions_and_lose_nothing(subject, tmp_path):
    image_id = subject.complete[0]
    shape = _values(subject.store.get_image_uri(image_id)).shape
    files = []
    for i in range(6):  # each label marks its own slice, so each can be found again
        values = np.zeros(shape, np.uint8)
        values[i] = 1
        files.append(_label(subject, image_id, tmp_path, f"l{i}", values=values))
    errors: list[BaseException] = []

    def save(path: str) -> None:
        try:
            subject.store.save_label(image_id, path, FINAL, {})
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
    threads = [threading.Thread(target=save, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    reopened = subject.reopen()
    versions = [v.version for v in reopened.label_versions(image_id, FINAL)]
    assert versions == [1, 2, 3, 4, 5, 6]
    marked = sorted(int(np.flatnonzero(_values(reopened.label_version_uri(image_id, FINAL, v)).any(axis=(1, 2)))[0])
                    for v in versions)
    assert marked == list(range(6))
