"""Bad input and faults against a real server process: every refusal is a 4xx naming the
problem, the server stays up, nothing stored changes, and what is stored says who did it."""

from __future__ import annotations

import gzip
import json
import shutil
import struct
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lib.model.checkpoint import read_checkpoint_record

from _cases import make_studies, t1c_path, truth_path, write_label_like
from _http import call, detail
from _server import monailabel_server

BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "monailabel_app" / "model" / "brats_segresnet.pt"

MODEL = "brats_segresnet"


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("studies")
    make_studies(root, 2, seed=48)
    return root


@pytest.fixture(scope="module")
def server(studies, tmp_path_factory) -> str:
    with monailabel_server(studies, tmp_path_factory.mktemp("log") / "server.log") as url:
        yield url


def _ids(studies: Path) -> list[str]:
    return sorted(p.name for p in studies.iterdir() if p.name.startswith("SynBraTS"))


def _image_bytes(array: np.ndarray) -> bytes:
    image = sitk.GetImageFromArray(array, isVector=False)
    path = Path(f"/tmp/{uuid.uuid4().hex}.nii.gz")
    sitk.WriteImage(image, str(path))
    try:
        return path.read_bytes()
    finally:
        path.unlink()


def _raw_nifti(size: int, spacing_mm: float, data_bytes: int) -> bytes:
    """A gzipped NIfTI-1 file declaring size^3 x 4 float32 voxels of ``spacing_mm``, with
    ``data_bytes`` of (random) voxel data after the header."""
    header = bytearray(348)
    struct.pack_into("<i", header, 0, 348)
    struct.pack_into("<8h", header, 40, 4, size, size, size, 4, 1, 1, 1)
    struct.pack_into("<hh", header, 70, 16, 32)       # float32
    struct.pack_into("<8f", header, 76, 1, spacing_mm, spacing_mm, spacing_mm, 1, 1, 1, 1)
    struct.pack_into("<f", header, 108, 352)            # vox_offset
    header[344:348] = b"n+1\0"
    data = np.random.default_rng(0).random(data_bytes // 4).astype(np.float32).tobytes()
    return gzip.compress(bytes(header) + b"\0" * 4 + data)


def test_a_server_path_is_refused_like_an_unknown_study(server):
    for image in ("/etc", "../../etc/passwd", "nope"):
        status, body = call(server, "POST", f"/infer/{MODEL}?image={urllib.request.quote(image)}&output=json")
        assert status == 404 and f"unknown image id '{image}'" in body.decode()


@pytest.mark.parametrize("path, method, form", [
    (f"/infer/{MODEL}?image=x", "POST", {"params": "{bad"}),
    ("/datastore/label?image=x&tag=final", "PUT", {"params": "[1, 2"}),
    ("/datastore/image?image=newcase", "PUT", {"params": "{'a': 1}"}),
    ("/datastore/label/info?label=x&tag=final", "PUT", {"params": "not json"}),
], ids=["infer", "label", "image", "label-info"])
def test_malformed_json_is_a_422(server, path, method, form):
    files = {"label": b"x"} if "label?" in path else {"file": b"x"} if "image?" in path else None
    status, body = call(server, method, path, fields=form, files=files)
    assert status == 422 and "JSON" in detail((status, body))


@pytest.mark.parametrize("tag", ["a%00b", "x" * 300, "..", "final%2F..%2F.."])
def test_bad_tags_are_422_and_store_nothing(server, studies, tag):
    image = _ids(studies)[0]
    label = truth_path(studies / image).read_bytes()
    assert call(server, "PUT", f"/datastore/label?image={image}&tag={tag}", files={"label": label})[0] == 422
    assert not list(studies.glob(f"labels/*/{image}/v*.nii.gz"))


def test_an_id_with_a_null_byte_or_300_characters_is_422_or_404_never_500(server):
    for image in ("a%00b", "y" * 300):
        assert call(server, "POST", f"/infer/{MODEL}?image={image}&output=json")[0] in (404, 422)


def test_infer_without_an_image_and_an_unknown_strategy_are_the_clients_to_fix(server):
    status, body = call(server, "POST", f"/infer/{MODEL}?output=json")
    assert status == 422 and "give an image id" in body.decode()
    assert call(server, "POST", "/activelearning/nosuch", body=b"{}", content_type="application/json")[0] == 404


def test_model_output_cannot_be_stored_as_a_correction_nor_a_correction_as_output(server, studies):
    image = _ids(studies)[0]
    status, body = call(server, "POST", f"/infer/{MODEL}?image={image}&output=json",
                        fields={"params": json.dumps({"label_tag": "final"})})
    assert status == 422 and "original" in body.decode()
    label = truth_path(studies / image).read_bytes()
    status, body = call(server, "PUT", f"/datastore/label?image={image}&tag=original", files={"label": label})
    assert status == 422 and "model's output" in body.decode()


@pytest.mark.parametrize("name, upload, expected", [
    ("one voxel", lambda: _image_bytes(np.ones((1, 1, 1, 4), np.float32)), 422),
    ("all zero", lambda: _image_bytes(np.zeros((4, 20, 20, 20), np.float32)), 422),
    ("complex", lambda: _image_bytes(np.ones((4, 20, 20, 20), np.complex64)), 422),
    ("zero spacing", lambda: _raw_nifti(20, 0.0, 20 ** 3 * 4 * 4), 422),
    ("gzip bomb", lambda: _raw_nifti(500, 1.0, 1 << 20), 413),
])
def test_useless_or_oversized_uploads_are_refused(server, studies, name, upload, expected):
    before = sorted(p.name for p in studies.iterdir())
    status, body = call(server, "PUT", f"/datastore/image?image=upload-{name.replace(' ', '-')}",
                        files={"file": upload()})
    assert status == expected, body
    assert sorted(p.name for p in studies.iterdir()) == before


def test_a_submission_records_who_when_and_from_what_and_every_version_is_readable(server, studies):
    image = _ids(studies)[1]
    assert call(server, "POST", f"/infer/{MODEL}?image={image}&output=json")[0] == 200
    label = write_label_like(t1c_path(studies / image), studies.parent / "fill.nii.gz", fill=1).read_bytes()
    for _ in range(2):
        status, body = call(server, "PUT", f"/datastore/label?image={image}&tag=final",
                            fields={"params": json.dumps({"user": "dr who", "ts": 1})}, files={"label": label})
        assert status == 200
    status, body = call(server, "GET", f"/btl/studies/{image}/labels/final")
    versions = json.loads(body)
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["user"] == "dr who" and versions[0]["ts"] > 1_700_000_000  # the client's ts is not taken
    assert versions[0]["original_version"] == 1 and versions[0]["model_version"].startswith("brats")
    status, body = call(server, "GET", f"/btl/studies/{image}/labels/final/1")
    assert status == 200 and body == (studies / "labels" / "final" / image / "v0001.nii.gz").read_bytes()
    assert call(server, "GET", f"/btl/studies/{image}/labels/final/9")[0] == 404
    audit = json.loads(call(server, "GET", f"/btl/audit?study={image}")[1])
    assert [e["action"] for e in audit] == ["label.save"] * 3 and audit[-1]["version"] == 2


def test_amending_a_labels_record_is_a_new_version(server, studies, tmp_path):
    image = _ids(studies)[0]
    label = write_label_like(t1c_path(studies / image), tmp_path / "l.nii.gz", fill=2).read_bytes()
    assert call(server, "PUT", f"/datastore/label?image={image}&tag=final", files={"label": label})[0] == 200
    status, _ = call(server, "PUT", f"/datastore/label/info?label={image}&tag=final",
                     fields={"params": json.dumps({"reviewed": True})})
    assert status == 200
    versions = json.loads(call(server, "GET", f"/btl/studies/{image}/labels/final")[1])
    assert versions[-1]["reviewed"] is True and "reviewed" not in versions[-2]
    assert versions[-1]["info_of_version"] == versions[-2]["version"]


@pytest.mark.parametrize("options", [{"max_epochs": "abc"}, {"batch_size": 0}, {"max_epochs": 1e9},
                                     {"learning_rate": -1}, {"roi_size": 50}])
def test_training_options_are_checked_on_arrival(server, options):
    status, body = call(server, "POST", f"/train/{MODEL}", body=json.dumps(options).encode(),
                        content_type="application/json")
    assert status == 422 and next(iter(options)) in body.decode()


def test_a_corrupt_trained_model_falls_back_to_the_bundled_one_with_a_warning(studies, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / f"{MODEL}.pt").write_bytes(b"half a model")
    root = tmp_path / "studies"
    shutil.copytree(studies / _ids(studies)[0], root / _ids(studies)[0])
    with monailabel_server(root, tmp_path / "server.log", conf={"model_dir": str(model_dir)}) as url:
        status, body = call(url, "GET", "/info/")
        info = json.loads(body)["models"][MODEL]
        assert status == 200 and "could not be loaded" in info["model_warning"]
        assert info["model_version"] == read_checkpoint_record(BUNDLED_MODEL)[0]  # the bundled one
        assert call(url, "POST", f"/infer/{MODEL}?image={_ids(studies)[0]}&output=json")[0] == 200
