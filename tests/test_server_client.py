"""The official MONAI Label client against a real server process on generated studies:
segmentation quality, study-level labels with versions, and bad input answered with 4xx."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import requests
import SimpleITK as sitk
from monailabel.client import MONAILabelClient

from lib.evaluation import region_dice
from lib.postprocessing import label_volumes_ml
from synthbrats import GeneratorConfig

from _cases import make_studies, t1c_path, truth_path, write_label_like
from _server import monailabel_server

MODEL = "brats_segresnet"
#: a full-resolution generated glioblastoma (seed not used in training)
FULL = GeneratorConfig(spacing=1.0, style="brats", kind="glioblastoma")
#: on this case the bundled model (brats-classifier-2mm-2026.12.01, trained on real cases only)
#: reaches WT 0.82, TC 0.59 (the network served before it, brats-segresnet-2mm-2026.12.01: 0.86 /
#: 0.85; docs/model-card.md says why generated cases are its weak side). The bounds leave room for
#: CPU numerics (bfloat16 on some CPUs, float32 on others).
FULL_SEED, MIN_WT, MIN_TC = 9503, 0.78, 0.5


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("studies")
    make_studies(root, 1, seed=FULL_SEED, config=FULL)
    fast = make_studies(root, 2, seed=43)
    incomplete = root / "incomplete-case"
    shutil.copytree(root / fast[0], incomplete)
    next(incomplete.glob("*-t2f.nii.gz")).unlink()
    return root


@pytest.fixture(scope="module")
def server(studies, tmp_path_factory) -> str:
    with monailabel_server(studies, tmp_path_factory.mktemp("log") / "server.log") as url:
        yield url


@pytest.fixture
def client(server, tmp_path) -> MONAILabelClient:
    return MONAILabelClient(server, tmpdir=str(tmp_path))


def _array(path: str | Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _final_versions(client: MONAILabelClient, image_id: str) -> int:
    labels = client.datastore()["objects"][image_id]["labels"]
    return labels.get("final", {}).get("versions", 0)


def test_info_names_the_model_its_labels_and_version(client):
    info = client.info()
    assert info["labels"] == {"NCR": 1, "ED": 2, "ET": 3}
    model = info["models"][MODEL]
    assert model["model_version"] and model["sequences"] == ["t1n", "t1c", "t2w", "t2f"]
    assert info["datastore"]["total"] >= 4


def test_infer_segments_a_study_on_its_t1c_grid_close_to_the_truth(client, studies):
    case = studies / f"SynBraTS-{FULL_SEED:05d}-000"
    label_file, result = client.infer(MODEL, case.name, {})
    label, t1c = sitk.ReadImage(label_file), sitk.ReadImage(str(t1c_path(case)))
    assert label.GetSize() == t1c.GetSize()
    assert np.allclose(label.GetOrigin(), t1c.GetOrigin()) and np.allclose(label.GetDirection(), t1c.GetDirection())
    predicted, truth = sitk.GetArrayFromImage(label), _array(truth_path(case))
    assert set(np.unique(predicted)) <= {0, 1, 2, 3}
    dice = region_dice(predicted, truth)
    assert dice["WT"] > MIN_WT and dice["TC"] > MIN_TC, dice
    assert result["volumes_ml"] == pytest.approx(label_volumes_ml(predicted, label.GetSpacing()), abs=0.01)
    assert result["model_version"] == client.info()["models"][MODEL]["model_version"]
    original = client.datastore()["objects"][case.name]["labels"]["original"]
    assert original["info"]["model_version"] == result["model_version"]


def test_an_uploaded_four_channel_file_is_a_study_that_can_be_segmented(client, studies, tmp_path):
    source = studies / "SynBraTS-00043-000"
    channels = [sitk.ReadImage(str(next(source.glob(f"*-{s}.nii.gz")))) for s in ("t1n", "t1c", "t2w", "t2f")]
    upload = tmp_path / "upload-4ch.nii.gz"
    sitk.WriteImage(sitk.JoinSeries(channels), str(upload))
    assert client.upload_image(str(upload), image_id="uploaded-4ch")["image"] == "uploaded-4ch"
    label_file, result = client.infer(MODEL, "uploaded-4ch", {})
    assert sitk.ReadImage(label_file).GetSize() == channels[1].GetSize()
    assert result["volumes_ml"]["WT"] >= 0


def test_next_sample_and_save_label_keep_every_version(client, studies, tmp_path):
    sample = client.next_sample("first", {})
    image_id = sample["id"]
    assert image_id in client.datastore()["objects"]
    reference = t1c_path(studies / image_id)
    client.save_label(image_id, str(write_label_like(reference, tmp_path / "a.nii.gz", fill=2)), tag="final")
    second = _array(reference) * 0 + 1
    client.save_label(image_id, str(write_label_like(reference, tmp_path / "b.nii.gz", values=second)), tag="final")
    assert _final_versions(client, image_id) == 2
    assert image_id not in [s.get("id") for s in [client.next_sample("first", {})]]
    downloaded = client.download_label(image_id, "final")
    assert (_array(downloaded) == 1).all()
    first = studies / "labels" / "final" / image_id / "v0001.nii.gz"
    assert (_array(first) == 2).all()


def test_unknown_image_is_404(server):
    response = requests.post(f"{server}/infer/{MODEL}", params={"image": "no-such-study"}, timeout=60)
    assert response.status_code == 404 and "no-such-study" in response.json()["detail"]


def test_study_with_a_missing_sequence_is_422_naming_it(server):
    response = requests.post(f"{server}/infer/{MODEL}", params={"image": "incomplete-case"}, timeout=60)
    assert response.status_code == 422 and "t2f" in response.json()["detail"]


def test_corrupt_upload_is_422(server, tmp_path):
    corrupt = tmp_path / "scan.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b" + b"not really gzip" * 10)
    response = requests.post(f"{server}/infer/{MODEL}", files={"file": corrupt.open("rb")}, timeout=60)
    assert response.status_code == 422 and "cannot read" in response.json()["detail"]


@pytest.mark.parametrize("problem", ["values outside 0-3", "another grid"])
def test_bad_label_is_422_and_nothing_is_stored(server, client, studies, tmp_path, problem):
    image_id = "SynBraTS-00043-001"
    reference = t1c_path(studies / image_id)
    if problem == "values outside 0-3":
        bad = write_label_like(reference, tmp_path / "bad.nii.gz", fill=7)
    else:
        other = t1c_path(studies / f"SynBraTS-{FULL_SEED:05d}-000")
        bad = write_label_like(other, tmp_path / "bad.nii.gz", fill=1)
    before = client.datastore()["objects"][image_id]["labels"]
    response = requests.put(f"{server}/datastore/label", params={"image": image_id, "tag": "final"},
                            files={"label": bad.open("rb")}, timeout=60)
    assert response.status_code == 422, response.text
    assert ("outside" if problem.startswith("values") else "grid") in response.json()["detail"]
    assert client.datastore()["objects"][image_id]["labels"] == before
    assert requests.get(f"{server}/info/", timeout=30).status_code == 200
