"""The server's typed-error boundary (lib/server/errors.py): typed errors from lib/ become 4xx
answers with the reason and no path of the server; inside lib/ they stay typed."""

from __future__ import annotations

import json

import pytest
from fastapi import HTTPException

from lib.datastore.study_folder import StudyFolderDatastore
from lib.errors import ConflictError, InvalidLabelError, UnknownIdError, UnreadableImageError
from lib.server.errors import QueueFull, http_errors, http_status, public_message

from _cases import make_studies, t1c_path, write_label_like


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> StudyFolderDatastore:  # the tests store nothing in it
    root = tmp_path_factory.mktemp("studies")
    make_studies(root, 1, seed=43)
    return StudyFolderDatastore(root)


def _answer(call, *args) -> tuple[int, str]:
    with pytest.raises(HTTPException) as answer, http_errors():
        call(*args)
    return answer.value.status_code, str(answer.value.detail)


def test_typed_errors_become_answers_with_their_reason(store, tmp_path):
    image_id = store.list_images()[0]
    bad = str(write_label_like(t1c_path(store.root / image_id), tmp_path / "bad.nii.gz", fill=7))
    assert _answer(store.get_image_info, "nope") == (404, "unknown image id 'nope'")
    assert _answer(store.get_label_info, image_id, "final")[0] == 404
    status, reason = _answer(store.save_label, image_id, bad, "final", {})
    assert status == 422 and "[7]" in reason
    assert _answer(store.save_label, image_id, bad, "../..", {})[0] == 422
    assert _answer(store.add_image, image_id, bad, {})[0] == 422  # not a 4-channel image


def test_answers_name_no_folder_of_the_server(store, tmp_path):
    image_id = store.list_images()[0]
    missing = tmp_path / "deep" / "folder" / "upload.nii.gz"
    status, reason = _answer(store.add_image, "new-study", str(missing), {})
    assert status == 422 and "upload.nii.gz" in reason and str(tmp_path) not in reason
    with pytest.raises(HTTPException) as answer, http_errors():
        raise UnreadableImageError("cannot read image", image_id, store.root / image_id / "x-t1c.nii.gz")
    assert str(store.root) not in str(answer.value.detail) and "x-t1c.nii.gz" in str(answer.value.detail)


@pytest.mark.parametrize(("message", "public"), [
    ("file '/tmp/btl-upload-x1/case.nii.gz': truncated", "file 'case.nii.gz': truncated"),
    ("at /srv/studies/A/A-t1c.nii.gz, and /etc/x/y", "at A-t1c.nii.gz, and y"),
    ("PACS http://pacs:8042/dicom-web/studies is down", "PACS http://pacs:8042/dicom-web/studies is down"),
    ("id 'a/b' or /etc", "id 'a/b' or /etc"),  # no folder named: nothing to cut
])
def test_public_message_cuts_absolute_paths_to_their_last_part(message, public):
    assert public_message(message) == public


def test_the_status_table_covers_the_server_errors():
    assert [http_status(e) for e in (UnknownIdError("x"), ConflictError("x"), QueueFull("x", 3),
                                     json.JSONDecodeError("x", "", 0), RuntimeError("x"))] == [404, 409, 503, 422, None]
    with pytest.raises(HTTPException) as busy, http_errors():
        raise QueueFull("inference", 7)
    assert busy.value.status_code == 503 and busy.value.headers == {"Retry-After": "7"}


def test_inside_the_boundary_errors_stay_typed(store, tmp_path):
    image_id = store.list_images()[0]
    bad = str(write_label_like(t1c_path(store.root / image_id), tmp_path / "bad.nii.gz", fill=7))
    with pytest.raises(InvalidLabelError):
        store.save_label(image_id, bad, "final", {})
