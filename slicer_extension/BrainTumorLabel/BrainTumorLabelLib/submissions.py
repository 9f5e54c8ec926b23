"""What has been submitted, so the same correction is never sent twice.

The module keeps a digest of the label it last submitted for each study. A submit that
failed left no digest and can be retried; a second click on Submit with an unchanged
segmentation is answered "already submitted" without a request.
"""

from __future__ import annotations

import hashlib


def label_digest(values: bytes, shape: tuple[int, ...]) -> str:
    """Digest of a label's voxels (bytes of the array) and shape."""
    return hashlib.sha256(repr(shape).encode() + values).hexdigest()


class SubmissionLedger:
    def __init__(self) -> None:
        self._submitted: dict[str, str] = {}

    def already_submitted(self, image_id: str, digest: str) -> bool:
        return self._submitted.get(image_id) == digest

    def record(self, image_id: str, digest: str) -> None:
        self._submitted[image_id] = digest
