"""Small helpers shared by the transform modules (grid records, tolerances, array views).

Array conventions in this package
---------------------------------
* SimpleITK images are kept as they are read (physical space in ITK's LPS world
  coordinates, millimetres).
* NumPy arrays produced by the package are indexed ``[x, y, z]`` (the SimpleITK
  index order), i.e. the transpose of ``sitk.GetArrayFromImage`` which is ``[z, y, x]``.
* "RAS" means: array index x increases towards the patient's Right, y towards
  Anterior, z towards Superior (nibabel's convention). In ITK's LPS world this is
  the direction matrix ``diag(-1, -1, 1)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

#: ITK (LPS-world) direction matrix of a RAS-oriented grid.
RAS_DIRECTION: tuple[float, ...] = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)

#: Two grids are "the same" when sizes are equal and spacing/origin agree within
#: these tolerances (mm) and direction cosines within ``DIRECTION_TOL``.
SPACING_TOL_MM = 1e-3
ORIGIN_TOL_MM = 1e-2
DIRECTION_TOL = 1e-4


@dataclass(frozen=True)
class Grid:
    """A 3D image grid: ``size`` (voxels, x,y,z), ``spacing`` (mm), ``origin`` (mm, LPS world)
    and ``direction`` (row-major 3x3 direction cosines, LPS world), exactly as SimpleITK has them."""

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: sitk.Image) -> Grid:
        """The grid of a 3D SimpleITK image."""
        return cls(
            tuple(int(s) for s in image.GetSize()),
            tuple(float(s) for s in image.GetSpacing()),
            tuple(float(o) for o in image.GetOrigin()),
            tuple(float(d) for d in image.GetDirection()),
        )

    def reference_image(self, pixel_type: int = sitk.sitkUInt8) -> sitk.Image:
        """An empty image on this grid (a resampling reference)."""
        img = sitk.Image([int(s) for s in self.size], pixel_type)
        self.apply_to(img)
        return img

    def apply_to(self, image: sitk.Image) -> sitk.Image:
        """Set spacing/origin/direction of ``image`` (same size expected) to this grid; returns it."""
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def matches(self, other: Grid) -> bool:
        """Same size, and spacing/origin/direction equal within the module tolerances."""
        return (
            self.size == other.size
            and np.allclose(self.spacing, other.spacing, atol=SPACING_TOL_MM, rtol=0)
            and np.allclose(self.origin, other.origin, atol=ORIGIN_TOL_MM, rtol=0)
            and np.allclose(self.direction, other.direction, atol=DIRECTION_TOL, rtol=0)
        )

    def same_voxels(self, other: Grid) -> bool:
        """The two grids hold the same voxel centres in another index order: each axis of one
        is an axis of the other, with the same spacing and size, possibly reversed (what a
        viewer writes for a file whose axes it reordered). Resampling between them with
        nearest neighbour is then exact."""
        m_self = np.asarray(self.direction).reshape(3, 3) @ np.diag(self.spacing)
        m_other = np.asarray(other.direction).reshape(3, 3) @ np.diag(other.spacing)
        steps = np.linalg.solve(m_other, m_self)  # an index step of self, in index steps of other
        rounded = np.round(steps)
        if not np.allclose(steps, rounded, atol=1e-3) or sorted(np.abs(rounded).sum(0)) != [1, 1, 1] \
                or sorted(np.abs(rounded).sum(1)) != [1, 1, 1]:
            return False
        start = np.linalg.solve(m_other, np.asarray(self.origin) - np.asarray(other.origin))
        if not np.allclose(start, np.round(start), atol=1e-2):
            return False
        end = np.round(start) + rounded @ (np.asarray(self.size) - 1)
        lo, hi = np.minimum(np.round(start), end), np.maximum(np.round(start), end)
        return bool((lo == 0).all() and (hi == np.asarray(other.size) - 1).all())

    def corners(self) -> np.ndarray:
        """(8, 3) physical coordinates (mm, LPS) of the outer voxel *edges* of the grid."""
        d = np.asarray(self.direction).reshape(3, 3)
        sp = np.asarray(self.spacing)
        o = np.asarray(self.origin)
        pts = []
        for i in (-0.5, self.size[0] - 0.5):
            for j in (-0.5, self.size[1] - 0.5):
                for k in (-0.5, self.size[2] - 0.5):
                    pts.append(o + d @ (np.array([i, j, k]) * sp))
        return np.asarray(pts)

    def sub_grid(self, start: Sequence[int], stop: Sequence[int]) -> Grid:
        """The voxels ``[start, stop)`` (x, y, z) of this grid as a grid of their own."""
        d = np.asarray(self.direction).reshape(3, 3)
        origin = np.asarray(self.origin) + d @ (np.asarray(start, float) * np.asarray(self.spacing))
        return Grid(tuple(int(b - a) for a, b in zip(start, stop, strict=True)), self.spacing,
                    tuple(float(v) for v in origin), self.direction)

    def index_of(self, points: np.ndarray) -> np.ndarray:
        """Continuous voxel indices (N, 3) (x, y, z) of physical points (N, 3) (mm, LPS)."""
        d = np.asarray(self.direction).reshape(3, 3)
        return ((np.asarray(points, float) - np.asarray(self.origin)) @ d) / np.asarray(self.spacing)

    def to_dict(self) -> dict[str, Any]:
        return {"size": list(self.size), "spacing": list(self.spacing),
                "origin": list(self.origin), "direction": list(self.direction)}


@dataclass
class CaseGeometry:
    """Everything needed to map a preprocessed array back onto the input t1c grid.

    * ``original``: grid of the t1c file as read (before any reorientation).
    * ``ras_grid``: the RAS working grid every sequence was resampled onto (set by
      :class:`~lib.transforms.geometry.ResampleToRASGridd`).
    * ``crop_start`` / ``crop_stop``: voxel box ``[start, stop)`` (x,y,z) of the crop
      inside ``ras_grid`` (set by :class:`~lib.transforms.brainmask.CropToMaskd`);
      ``None`` means not cropped.
    """

    original: Grid
    ras_grid: Grid | None = None
    crop_start: tuple[int, ...] | None = None
    crop_stop: tuple[int, ...] | None = None
    registered: dict[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "original": self.original.to_dict(),
            "ras_grid": None if self.ras_grid is None else self.ras_grid.to_dict(),
            "crop_start": None if self.crop_start is None else list(self.crop_start),
            "crop_stop": None if self.crop_stop is None else list(self.crop_stop),
            "registered": dict(self.registered),
        }


def array_xyz(image: sitk.Image) -> np.ndarray:
    """Voxel array of a 3D image indexed [x, y, z] (a transposed view of SimpleITK's [z, y, x])."""
    return sitk.GetArrayFromImage(image).transpose(2, 1, 0)


def image_from_xyz(array: np.ndarray, grid: Grid) -> sitk.Image:
    """SimpleITK image on ``grid`` from an array indexed [x, y, z]."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array).transpose(2, 1, 0)))
    return grid.apply_to(img)
