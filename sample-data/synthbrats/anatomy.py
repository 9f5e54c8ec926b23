"""Healthy anatomy: the MNI152 template tissue maps, deformed into a new subject.

Tissue classes are white matter (WM), grey matter (GM) and cerebrospinal fluid (CSF).
WM and GM are the template's probability maps; CSF is what the brain mask leaves
(ventricles, sulci, the thin rim around the cortex).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from .grid import WorkingGrid, rotation_matrix, smooth_noise

TISSUES = ("wm", "gm", "csf")


@dataclass(frozen=True)
class Template:
    """Template maps (float32 arrays on the template grid) and its voxel -> MNI mm affine."""

    wm: np.ndarray
    gm: np.ndarray
    csf: np.ndarray
    affine: np.ndarray


@lru_cache(maxsize=1)
def load_template() -> Template:
    """The MNI152 2009a 1 mm GM/WM maps and brain mask bundled in nilearn (no download)."""
    from nilearn import datasets  # imported here: nilearn's import is slow and only needed once

    mask_img = datasets.load_mni152_brain_mask(resolution=1)
    mask = ndimage.binary_fill_holes(mask_img.get_fdata() > 0).astype(np.float32)
    gm = datasets.load_mni152_gm_template(resolution=1).get_fdata().astype(np.float32) * mask
    wm = datasets.load_mni152_wm_template(resolution=1).get_fdata().astype(np.float32) * mask
    csf = np.clip(mask - gm - wm, 0.0, 1.0)
    return Template(wm=wm, gm=gm, csf=csf, affine=mask_img.affine.astype(np.float64))


@dataclass(frozen=True)
class SpatialDeformation:
    """Maps subject-space RAS points (mm) to template-space MNI points (mm):
    ``q = A @ p + t + u(p)`` with a random affine ``(A, t)`` and a smooth elastic
    displacement ``u`` stored on a coarse control grid over the working grid."""

    matrix: np.ndarray        # (3, 3)
    translation: np.ndarray   # (3,) mm
    elastic: np.ndarray       # (3, cx, cy, cz) mm, control-point displacements
    grid: WorkingGrid

    @classmethod
    def random(cls, rng: np.random.Generator, grid: WorkingGrid, *, max_rotation_deg: float = 8.0,
               scale_range: tuple[float, float] = (0.9, 1.06), elastic_mm: float = 3.0,
               control_spacing_mm: float = 16.0) -> SpatialDeformation:
        angles = np.deg2rad(rng.uniform(-max_rotation_deg, max_rotation_deg, 3))
        rot = rotation_matrix(angles)
        scale = np.diag(rng.uniform(*scale_range, 3))
        shear = np.eye(3) + np.triu(rng.uniform(-0.04, 0.04, (3, 3)), 1)
        # the affine acts from subject to template: a bigger subject means a smaller matrix
        matrix = np.linalg.inv(rot @ shear @ scale)
        translation = rng.uniform(-4, 4, 3)
        centre = np.asarray(grid.affine[:3, 3] + grid.affine[:3, :3] @ ((np.asarray(grid.shape) - 1) / 2))
        translation = translation + centre - matrix @ centre  # deform about the brain centre
        n_ctrl = [int(np.ceil(s * grid.spacing / control_spacing_mm)) + 1 for s in grid.shape]
        elastic = rng.normal(0, elastic_mm, (3, *n_ctrl)).astype(np.float32)
        elastic = ndimage.gaussian_filter(elastic, (0, 0.7, 0.7, 0.7))
        return cls(matrix, translation, elastic, grid)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """(3, ...) subject RAS mm -> (3, ...) template MNI mm."""
        flat = points.reshape(3, -1)
        ijk = np.linalg.inv(self.grid.affine)[:3] @ np.vstack([flat, np.ones((1, flat.shape[1]), flat.dtype)])
        ctrl = ijk * (np.asarray(self.elastic.shape[1:])[:, None] - 1) / (np.asarray(self.grid.shape)[:, None] - 1)
        disp = np.stack([ndimage.map_coordinates(c, ctrl, order=1, mode="nearest") for c in self.elastic])
        out = self.matrix.astype(np.float32) @ flat + self.translation[:, None].astype(np.float32) + disp
        return out.reshape(points.shape).astype(np.float32)


def sample_tissues(template: Template, template_points: np.ndarray) -> dict[str, np.ndarray]:
    """Tissue probability maps at template points (3, X, Y, Z) MNI mm -> {tissue: (X, Y, Z)}."""
    ijk = np.linalg.inv(template.affine)[:3] @ np.vstack(
        [template_points.reshape(3, -1), np.ones((1, template_points[0].size), np.float32)])
    shape = template_points.shape[1:]
    return {t: ndimage.map_coordinates(getattr(template, t), ijk, order=1, mode="constant", cval=0.0)
            .reshape(shape).astype(np.float32) for t in TISSUES}


def individualise(tissues: dict[str, np.ndarray], rng: np.random.Generator, spacing: float,
                  sharpness: float = 2.5, jitter: float = 0.6) -> dict[str, np.ndarray]:
    """Turn population-average maps into an individual-looking brain.

    The template is an average of 152 brains, so its cortex is blurred. Tissue
    log-probabilities get fine random jitter (correlation ~1.5 mm) and are sharpened
    by ``sharpness`` before renormalising, which gives crisp, irregular boundaries
    while keeping the brain outline (the sum of the three maps) unchanged.
    """
    brain = sum(tissues.values())
    logits = []
    for name in TISSUES:
        noise = smooth_noise(rng, brain.shape, max(0.75, 1.5 / spacing))
        logits.append(sharpness * (np.log(tissues[name] + 1e-3) + jitter * noise))
    logits_arr = np.stack(logits)
    logits_arr -= logits_arr.max(0, keepdims=True)
    probs = np.exp(logits_arr)
    probs /= probs.sum(0, keepdims=True)
    return {name: (probs[i] * brain).astype(np.float32) for i, name in enumerate(TISSUES)}


def carve_sulci(tissues: dict[str, np.ndarray], rng: np.random.Generator, spacing: float,
                depth_mm: float = 18.0, width: float = 0.3) -> dict[str, np.ndarray]:
    """Open thin, folded CSF-filled sulci in the cortex, which the averaged template lacks.

    Sulci are drawn where a smooth random field (correlation ~4 mm) crosses zero: its
    zero-set is a set of folded sheets. They are confined to the outer ``depth_mm`` of the
    brain and to voxels with grey matter, and fade with depth, so they cut in from the surface
    between gyri. Tissue there is replaced by CSF; the brain outline is unchanged.
    """
    brain = sum(tissues.values())
    depth = ndimage.distance_transform_edt(brain > 0.5) * spacing
    field = smooth_noise(rng, brain.shape, 4.0 / spacing)
    sheets = np.exp(-(field / width) ** 2)
    sulcal = sheets * np.clip(1.0 - depth / depth_mm, 0.0, 1.0) * np.clip(tissues["gm"] * 2.0, 0.0, 1.0)
    sulcal = sulcal.astype(np.float32)
    return {"wm": tissues["wm"] * (1 - sulcal), "gm": tissues["gm"] * (1 - sulcal),
            "csf": tissues["csf"] + sulcal * (tissues["wm"] + tissues["gm"])}
