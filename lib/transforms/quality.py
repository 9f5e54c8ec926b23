"""Input quality measurements that do not change the image: what a reader should be told.

Signal dropout: a sequence that is (almost) black inside the brain where another sequence shows
tissue, e.g. a failed coil element or a partial acquisition. The brain's outer 4 mm are left
out: there the sequences' own skull-stripping masks and fields of view differ by a few voxels
in most cases, which is not what this looks for. One of the eight real labelled cases
(BraTS2021-01482) has it in T1: 4.3 % of its brain on the 2 mm working grid, where the thirteen
other real cases of ``experiments/prepare_data.py``, the two unlabelled ones of ``shared/real-cases``
and generated raw acquisitions reach at most 0.8 % in any sequence (hence a note above 2 %).
Of the 139 mL of false tumor the cv8 model calls in that case, 67 mL lie where its T1 is
black (128 mL of the brain at 1 mm, rim included), along the cortex: tissue that is black on one
sequence looks like nothing normal. The segmentation is not changed; the server's result says so
in its notes.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
from monai.transforms import MapTransform
from scipy import ndimage

from lib.brats import SEQUENCES

#: A voxel has "no signal" in a sequence below this fraction of that sequence's brain median.
DROPOUT_FRACTION_OF_MEDIAN = 0.05
#: The brain's outer rim left out of the measurement (mm).
DROPOUT_EDGE_MARGIN_MM = 4.0
#: Share of the brain without signal in one sequence above which the result carries a note.
DROPOUT_NOTE_FRACTION = 0.02


def signal_dropout(image: np.ndarray, brain: np.ndarray, spacing_mm: float) -> dict[str, float]:
    """Per sequence, the share of ``brain`` (bool (X, Y, Z)) where the channel of ``image``
    (float (C, X, Y, Z), channels in :data:`lib.brats.SEQUENCES` order, raw intensities, isotropic
    ``spacing_mm``) is below :data:`DROPOUT_FRACTION_OF_MEDIAN` of its brain median while another
    channel is not, counting only voxels deeper than :data:`DROPOUT_EDGE_MARGIN_MM` inside the
    brain. Empty mask: all 0."""
    brain = np.asarray(brain, bool)
    if not brain.any():
        return dict.fromkeys(SEQUENCES, 0.0)
    channels = np.asarray(image)
    low = np.stack([channel < DROPOUT_FRACTION_OF_MEDIAN * float(np.median(channel[brain])) for channel in channels])
    margin_voxels = max(1, round(DROPOUT_EDGE_MARGIN_MM / spacing_mm))
    counted = ndimage.binary_erosion(brain, iterations=margin_voxels) & ~low.all(axis=0)
    total = float(np.count_nonzero(brain))
    return {sequence: float(np.count_nonzero(low[i] & counted)) / total for i, sequence in enumerate(SEQUENCES)}


class SignalDropoutd(MapTransform):
    """Measure :func:`signal_dropout` of ``data[image_key]`` (float (C, X, Y, Z) on an isotropic
    ``spacing_mm`` grid, before any normalisation) inside ``data[mask_key]`` (uint8 (1, X, Y, Z)).

    Writes ``data["signal_dropout"]``: ``{sequence: share of the brain}`` for skull-stripped
    input (``data["skull_stripped"]``), ``{}`` otherwise (a head mask holds air and bone). The
    image is not changed.
    """

    def __init__(self, spacing_mm: float, image_key: str = "image", mask_key: str = "brain_mask") -> None:
        super().__init__([image_key])
        self.spacing_mm, self.image_key, self.mask_key = spacing_mm, image_key, mask_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        stripped = bool(d.get("skull_stripped", True))
        d["signal_dropout"] = signal_dropout(np.asarray(d[self.image_key]), np.asarray(d[self.mask_key])[0] > 0,
                                             self.spacing_mm) if stripped else {}
        return d
