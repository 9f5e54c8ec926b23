"""Return a label predicted in preprocessed space (the cropped RAS working grid) onto the input t1c grid."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from lib.errors import InvalidLabelError

from ._common import CaseGeometry, image_from_xyz
from .geometry import N_LABEL_CLASSES, resample_label


def uncrop(label: np.ndarray, geometry: CaseGeometry) -> np.ndarray:
    """Place a cropped (X, Y, Z) label back into the full RAS grid (zeros elsewhere)."""
    if geometry.crop_start is None or geometry.crop_stop is None or geometry.ras_grid is None:
        return np.asarray(label)
    full = np.zeros(geometry.ras_grid.size, np.uint8)
    sl = tuple(slice(a, b) for a, b in zip(geometry.crop_start, geometry.crop_stop, strict=True))
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
    expected = tuple(b - a for a, b in zip(geometry.crop_start, geometry.crop_stop, strict=True)) \
        if geometry.crop_start is not None and geometry.crop_stop is not None else geometry.ras_grid.size
    if arr.shape != tuple(expected):
        raise InvalidLabelError(f"label shape {arr.shape} does not match the preprocessed shape {expected}", case_id)
    vals = np.unique(arr)
    if not np.isin(vals, np.arange(N_LABEL_CLASSES)).all():
        raise InvalidLabelError(f"label has values outside {{0, 1, 2, 3}}: {vals[:10].tolist()}", case_id)
    full = image_from_xyz(uncrop(arr.astype(np.uint8), geometry), geometry.ras_grid)
    return resample_label(full, geometry.original)
