"""Return a label predicted in preprocessed space (cropped 1 mm RAS) onto the input t1c grid."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import SimpleITK as sitk
from monai.transforms import MapTransform

from lib.errors import InvalidLabelError

from ._common import CaseGeometry, array_xyz, image_from_xyz
from .geometry import N_LABEL_CLASSES, resample_label


def uncrop(label: np.ndarray, geometry: CaseGeometry) -> np.ndarray:
    """Place a cropped (X, Y, Z) label back into the full RAS grid (zeros elsewhere)."""
    if geometry.crop_start is None or geometry.crop_stop is None:
        return np.asarray(label)
    full = np.zeros(geometry.ras_grid.size, np.uint8)
    sl = tuple(slice(a, b) for a, b in zip(geometry.crop_start, geometry.crop_stop))
    full[sl] = label
    return full


def restore_label(label: np.ndarray, geometry: CaseGeometry, case_id: str | None = None) -> sitk.Image:
    """Map a preprocessed-space label back onto the ORIGINAL t1c grid.

    ``label``: integer array (X, Y, Z) or (1, X, Y, Z) on the cropped RAS grid (torch tensors
    are accepted too), values in {0, 1, 2, 3}. Steps: un-crop into the full RAS grid, then
    one-hot linear interpolation + argmax onto the t1c grid as read (size, spacing, origin,
    direction of the input file). Returns a UInt8 ``sitk.Image`` on that grid.
    Raises :class:`InvalidLabelError` for a wrong shape or values.
    """
    arr = np.asarray(label.detach().cpu().numpy() if hasattr(label, "detach") else label)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if geometry.ras_grid is None:
        raise InvalidLabelError("geometry record has no RAS grid (was the case preprocessed?)", case_id)
    expected = tuple(b - a for a, b in zip(geometry.crop_start, geometry.crop_stop)) \
        if geometry.crop_start is not None and geometry.crop_stop is not None else geometry.ras_grid.size
    if arr.shape != tuple(expected):
        raise InvalidLabelError(f"label shape {arr.shape} does not match the preprocessed shape {expected}", case_id)
    vals = np.unique(arr)
    if not np.isin(vals, np.arange(N_LABEL_CLASSES)).all():
        raise InvalidLabelError(f"label has values outside {{0, 1, 2, 3}}: {vals[:10].tolist()}", case_id)
    full = image_from_xyz(uncrop(arr.astype(np.uint8), geometry), geometry.ras_grid)
    return resample_label(full, geometry.original)


class RestoreLabeld(MapTransform):
    """Inverse of the preprocessing for labels. Reads ``data[key]`` (cropped RAS label,
    (1, X, Y, Z) or (X, Y, Z)) and ``data[geometry_key]`` (:class:`CaseGeometry`); writes
    ``data[key]`` as a UInt8 ``sitk.Image`` on the original t1c grid, or, with
    ``as_array=True``, a uint8 array (X, Y, Z) in the original file's index order."""

    def __init__(self, keys: Sequence[str] = ("pred",), geometry_key: str = "geometry",
                 as_array: bool = False) -> None:
        super().__init__(keys)
        self.geometry_key, self.as_array = geometry_key, as_array

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = restore_label(d[key], d[self.geometry_key], d.get("case_id"))
            d[key] = array_xyz(img) if self.as_array else img
        return d

