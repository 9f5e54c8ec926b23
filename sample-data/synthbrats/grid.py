"""The working grid on which a subject is synthesised, and noise fields on it.

The working grid is BraTS-like: 240 x 240 x 155 voxels at 1 mm (or a coarser spacing
for speed), axis-aligned RAS (index x -> Right, y -> Anterior, z -> Superior),
centred on the brain in MNI space. Arrays on it are indexed [x, y, z].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Field of view of BraTS releases in mm (x, y, z).
BRATS_FOV_MM = (240.0, 240.0, 155.0)
#: Centre of the field of view in MNI (RAS) mm: the middle of the template brain.
BRAIN_CENTRE_MNI = (0.0, -17.0, 5.0)


@dataclass(frozen=True)
class WorkingGrid:
    """Axis-aligned RAS grid: ``shape`` (voxels), ``spacing`` (mm), ``affine`` (4x4 voxel -> RAS mm)."""

    spacing: float = 1.0

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(round(f / self.spacing)) for f in BRATS_FOV_MM)  # type: ignore[return-value]

    @property
    def affine(self) -> np.ndarray:
        a = np.eye(4)
        a[:3, :3] *= self.spacing
        centre_index = (np.asarray(self.shape) - 1) / 2.0
        a[:3, 3] = np.asarray(BRAIN_CENTRE_MNI) - self.spacing * centre_index
        return a

    def world_points(self, step: int = 1) -> np.ndarray:
        """(3, X, Y, Z) RAS mm coordinates of the voxel centres (every ``step``-th voxel)."""
        axes = [np.arange(0, n, step, dtype=np.float32) for n in self.shape]
        ijk = np.stack(np.meshgrid(*axes, indexing="ij"))
        a = self.affine.astype(np.float32)
        return np.einsum("ij,jxyz->ixyz", a[:3, :3], ijk) + a[:3, 3, None, None, None]


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian random field of ``shape`` with correlation length
    ``sigma_vox`` voxels. Large sigmas are drawn on a coarse grid and upsampled (fast)."""
    factor = max(1, int(sigma_vox // 4))
    if factor == 1:
        field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox, mode="wrap")
    else:
        coarse = tuple(int(np.ceil(s / factor)) + 1 for s in shape)
        field = ndimage.gaussian_filter(rng.standard_normal(coarse).astype(np.float32), sigma_vox / factor,
                                        mode="wrap")
        field = ndimage.zoom(field, [s / c for s, c in zip(shape, coarse, strict=True)], order=1)
    field -= field.mean()
    return field / (field.std() + 1e-8)


def rotation_matrix(angles_rad: np.ndarray) -> np.ndarray:
    """3x3 rotation about x, then y, then z by ``angles_rad`` (radians)."""
    cx, cy, cz = np.cos(angles_rad)
    sx, sy, sz = np.sin(angles_rad)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx
