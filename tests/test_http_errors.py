"""The server's HTTP boundary: typed errors from the datastore reach MONAI Label's endpoints as
4xx answers with the reason, while inside lib/ they stay typed."""

from __future__ import annotations

import pytest
from fastapi import HTTPException

from lib.datastore.study_folder import StudyFolderDatastore
from lib.errors import InvalidLabelError
from lib.http_errors import HttpDatastore

from _cases import make_studies, t1c_path, write_label_like


@pytest.fixture
def boundary(tmp_path) -> HttpDatastore:
    make_studies(tmp_path / "studies", 1, seed=43)
    return HttpDatastore(StudyFolderDatastore(tmp_path / "studies"))


def _status(call, *args) -> tuple[int, str]:
    with pytest.raises(HTTPException) as answer:
        call(*args)
    return answer.value.status_code, str(answer.value.detail)


def test_typed_errors_become_answers_with_their_reason(boundary, tmp_path):
    image_id = boundary.list_images()[0]
    bad = str(write_label_like(t1c_path(boundary.store.root / image_id), tmp_path / "bad.nii.gz", fill=7))
    assert _status(boundary.get_image_info, "nope") == (404, "unknown image id 'nope'")
    assert _status(boundary.get_label_info, image_id, "final")[0] == 404
    status, reason = _status(boundary.save_label, image_id, bad, "final", {})
    assert status == 422 and "[7]" in reason
    assert _status(boundary.save_label, image_id, bad, "../..", {})[0] == 422
    assert _status(boundary.add_image, image_id, bad, {})[0] == 422  # not a 4-channel image


def test_inside_the_boundary_errors_stay_typed(boundary, tmp_path):
    image_id = boundary.list_images()[0]
    bad = str(write_label_like(t1c_path(boundary.store.root / image_id), tmp_path / "bad.nii.gz", fill=7))
    with pytest.raises(InvalidLabelError):
        boundary.store.save_label(image_id, bad, "final", {})
