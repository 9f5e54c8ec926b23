"""The study-level local datastore: one image id per four-sequence study, versioned labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from _cases import copy_studies, make_studies, t1c_path, truth_path, write_label_like
from lib.datastore.study_folder import StudyFolderDatastore
from lib.errors import ConflictError, InputError, InvalidLabelError, UnknownIdError


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


def test_saving_twice_keeps_both_versions(store, tmp_path):
    image_id, study = _first(store)
    store.save_label(image_id, str(write_label_like(t1c_path(study), tmp_path / "a.nii.gz", fill=1)), "final", {})
    first = Path(store.get_label_uri(image_id, "final"))
    first_bytes = first.read_bytes()
    store.save_label(image_id, str(write_label_like(t1c_path(study), tmp_path / "b.nii.gz", fill=2)), "final",
                     {"user": "annotator"})
    versions = store.label_versions(image_id, "final")
    assert [v["version"] for v in versions] == [1, 2]
    assert first.read_bytes() == first_bytes
    assert sitk.GetArrayFromImage(sitk.ReadImage(store.get_label_uri(image_id, "final"))).max() == 2
    assert store.get_label_info(image_id, "final")["user"] == "annotator"
    assert store.status()["completed"] == 1
    assert store.get_unlabeled_images() == [store.list_images()[1]]


@pytest.mark.parametrize("problem", ["value 5", "other grid"])
def test_a_bad_label_is_refused_and_nothing_is_stored(store, tmp_path, problem):
    image_id, study = _first(store)
    ref = t1c_path(study)
    if problem == "value 5":
        bad = write_label_like(ref, tmp_path / "bad.nii.gz", fill=5)
    else:
        img = sitk.ReadImage(str(ref))
        small = sitk.Image([s - 4 for s in img.GetSize()], sitk.sitkUInt8)
        small.SetSpacing(img.GetSpacing())
        bad = tmp_path / "bad.nii.gz"
        sitk.WriteImage(small, str(bad))
    with pytest.raises(InvalidLabelError):
        store.save_label(image_id, str(bad), "final", {})
    assert store.label_versions(image_id, "final") == []
    assert not (store.root / "labels" / "final" / image_id).exists() or \
        not any((store.root / "labels" / "final" / image_id).iterdir())


def test_unknown_ids_raise_a_lookup_error(store, tmp_path):
    with pytest.raises(UnknownIdError, match="unknown image id 'nope'"):
        store.get_image_uri("nope")
    image_id, _ = _first(store)
    with pytest.raises(UnknownIdError):
        store.get_label_uri(image_id, "final")


def test_a_study_missing_a_sequence_is_listed_with_its_problem(store):
    image_id, study = _first(store)
    next(study.glob("*-t2f.nii.gz")).unlink()
    assert image_id in store.list_images()
    assert "t2f" in store.get_image_info(image_id)["problem"]
    assert image_id not in [d["case_id"] for d in StudyFolderDatastore(store.root, import_case_labels=True).datalist()]


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
    with pytest.raises(InputError, match="not a valid id"):
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
