"""What only the local folder datastore does (the shared contract is in test_datastore_contract.py):
case folders and uploaded 4-channel files, imported case labels, recoverable removals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lib.datastore.study_folder import StudyFolderDatastore
from lib.errors import ConflictError, InputError

from _cases import copy_studies, make_studies, t1c_path, truth_path, write_label_like


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("generated")
    make_studies(folder, 2)
    return folder


@pytest.fixture
def store(generated, tmp_path) -> StudyFolderDatastore:
    return StudyFolderDatastore(copy_studies(generated, tmp_path / "studies"))


def _first(store: StudyFolderDatastore) -> tuple[str, Path]:
    image_id = store.list_images()[0]
    return image_id, store.study_path(image_id)


def test_a_case_folder_is_one_image_whose_uri_is_its_t1c(store):
    image_id, study = _first(store)
    assert len(store.list_images()) == 2
    assert store.get_image_uri(image_id) == str(t1c_path(study))
    info = store.get_image_info(image_id)
    assert sorted(info["sequences"]) == ["t1c", "t1n", "t2f", "t2w"]


def test_ground_truth_in_a_case_folder_is_not_an_annotation_unless_imported(store):
    image_id, study = _first(store)
    assert store.get_labeled_images() == []
    imported = StudyFolderDatastore(store.root, import_case_labels=True)
    assert imported.get_label_uri(image_id, "final") == str(truth_path(study))
    assert [d["case_id"] for d in imported.datalist()] == imported.list_images()


def test_an_uploaded_four_channel_image_becomes_a_study_and_is_never_overwritten(store, tmp_path):
    _, study = _first(store)
    channels = [sitk.ReadImage(str(next(study.glob(f"*-{s}.nii.gz")))) for s in ("t1n", "t1c", "t2w", "t2f")]
    upload = tmp_path / "upload.nii.gz"
    sitk.WriteImage(sitk.JoinSeries(channels), str(upload))
    assert store.add_image("uploaded", str(upload), {"user": "u"}) == "uploaded"
    assert "uploaded" in store.list_images()
    stored = Path(store.get_image_uri("uploaded")).read_bytes()
    with pytest.raises(ConflictError):
        store.add_image("uploaded", str(upload), {})
    assert Path(store.get_image_uri("uploaded")).read_bytes() == stored


def test_removing_a_label_moves_it_aside(store, tmp_path):
    image_id, study = _first(store)
    store.save_label(image_id, str(write_label_like(t1c_path(study), tmp_path / "a.nii.gz", fill=1)), "final", {})
    store.remove_label(image_id, "final")
    assert store.get_labeled_images() == []
    kept = list((store.root / "labels" / ".removed" / "final").rglob("v0001.nii.gz"))
    assert len(kept) == 1 and np.asarray(sitk.GetArrayFromImage(sitk.ReadImage(str(kept[0])))).max() == 1


def test_a_label_tag_that_climbs_out_of_the_folder_is_refused_and_moves_nothing(store):
    image_id, study = _first(store)
    with pytest.raises(InputError, match="not a valid label tag"):
        store.remove_label(image_id, "../..")
    assert study.is_dir() and image_id in store.list_images()


def test_removing_the_same_study_twice_within_a_second_keeps_both(store, tmp_path):
    image_id, study = _first(store)
    upload = tmp_path / "again.nii.gz"
    channels = [sitk.ReadImage(str(next(study.glob(f"*-{s}.nii.gz")))) for s in ("t1n", "t1c", "t2w", "t2f")]
    sitk.WriteImage(sitk.JoinSeries(channels), str(upload))
    store.remove_image(image_id)
    store.add_image(image_id, str(upload), {})
    store.remove_image(image_id)
    assert len(list((store.root / ".braintumorlabel" / "removed").iterdir())) == 2


def test_a_study_copied_in_while_serving_is_listed(store, generated, monkeypatch):
    monkeypatch.setattr("lib.datastore.study_folder.RESCAN_S", 0.0)
    source = generated / sorted(p.name for p in generated.iterdir())[0]
    copy_studies(source, store.root / "arrived-later")
    assert "arrived-later" in store.list_images()
