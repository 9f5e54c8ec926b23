"""A 3D volume from the instances of one DICOM series, with its geometry checked.

Slices are ordered by their position along the slice normal (never by InstanceNumber),
must share orientation, size and pixel spacing, and must be evenly spaced; the volume's
origin, direction and spacing come from ImagePositionPatient, ImageOrientationPatient,
PixelSpacing and the measured slice step. Voxels are RescaleSlope * stored + RescaleIntercept.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pydicom
import SimpleITK as sitk

from lib.errors import InvalidGeometryError, UnreadableImageError

#: How far slice steps and orientations may differ (mm, direction cosines).
STEP_TOLERANCE_MM = 0.01
ORIENTATION_TOLERANCE = 1e-4


def slice_order(datasets: Sequence[pydicom.Dataset]) -> list[int]:
    """Indices of ``datasets`` sorted by position along the slice normal: the order of the
    volume's third axis, and of a label's slices."""
    orientation = np.array([float(v) for v in datasets[0].ImageOrientationPatient])
    normal = np.cross(orientation[:3], orientation[3:])
    along = [float(np.dot([float(v) for v in ds.ImagePositionPatient], normal)) for ds in datasets]
    return [int(i) for i in np.argsort(along)]


def series_to_image(datasets: Sequence[pydicom.Dataset], name: str = "series") -> sitk.Image:
    """Build a Float32 ``sitk.Image`` from the datasets of one single-frame series.

    Raises :class:`InvalidGeometryError` for fewer than two slices, mixed orientation, size
    or spacing, duplicate or unevenly spaced slices; :class:`UnreadableImageError` when a
    slice has no usable pixel data or geometry attributes.
    """
    if len(datasets) < 2:
        raise InvalidGeometryError(f"{name}: {len(datasets)} slice(s); a volume needs at least 2")
    try:
        orientation = np.array([float(v) for v in datasets[0].ImageOrientationPatient])
        rows, cols = int(datasets[0].Rows), int(datasets[0].Columns)
        spacing_rc = np.array([float(v) for v in datasets[0].PixelSpacing])
        positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in datasets])
    except (AttributeError, TypeError, ValueError) as exc:
        raise UnreadableImageError(f"{name}: missing or invalid geometry attribute ({exc})") from None
    for ds in datasets[1:]:
        if not np.allclose([float(v) for v in ds.ImageOrientationPatient], orientation, atol=ORIENTATION_TOLERANCE):
            raise InvalidGeometryError(f"{name}: slices have different orientations")
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols) or \
                not np.allclose([float(v) for v in ds.PixelSpacing], spacing_rc, atol=1e-6):
            raise InvalidGeometryError(f"{name}: slices have different sizes or pixel spacings")
    row_dir, col_dir = orientation[:3], orientation[3:]
    order = slice_order(datasets)
    along = positions @ np.cross(row_dir, col_dir)
    steps = np.diff(along[order])
    if np.any(steps < STEP_TOLERANCE_MM):
        raise InvalidGeometryError(f"{name}: two slices share a position (duplicates or several stacks)")
    if np.ptp(steps) > max(STEP_TOLERANCE_MM, 0.001 * float(np.mean(steps))):
        raise InvalidGeometryError(f"{name}: slices are unevenly spaced (steps {steps.min():.3f} to "
                                   f"{steps.max():.3f} mm)")
    try:
        voxels = np.stack([_pixels(datasets[i]) for i in order])
    except Exception as exc:  # pydicom raises many types for broken pixel data
        raise UnreadableImageError(f"{name}: pixel data cannot be decoded ({exc})") from None
    image = sitk.GetImageFromArray(voxels.astype(np.float32))
    first, last = positions[order[0]], positions[order[-1]]
    # the step along the line through the slice origins (equal to the step along the normal
    # unless the stack is sheared, e.g. by a gantry tilt), so every slice lands where it was
    slice_step = float(np.linalg.norm(last - first)) / (len(datasets) - 1)
    slice_dir = (last - first) / (slice_step * (len(datasets) - 1))
    image.SetOrigin(tuple(float(v) for v in first))
    image.SetSpacing((float(spacing_rc[1]), float(spacing_rc[0]), slice_step))
    image.SetDirection(tuple(float(v) for v in np.column_stack([row_dir, col_dir, slice_dir]).ravel()))
    return image


def _pixels(ds: pydicom.Dataset) -> np.ndarray:
    arr = ds.pixel_array.astype(np.float64)
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
    return arr * slope + intercept
