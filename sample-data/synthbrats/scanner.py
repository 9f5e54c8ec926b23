"""The scanner and site: intensity effects and acquisition geometry of each sequence.

Intensity: smooth multiplicative bias field, gamma, partial-volume blur, Rician noise
and an overall scale (real sites differ by an order of magnitude). Geometry:

* ``brats`` style: all sequences co-registered on the 1 mm working grid, stored
  LPS- or RAS-oriented as in BraTS releases;
* ``raw`` style: each sequence on its own acquisition grid (axial, sagittal or
  coronal; anisotropic voxels; thick slices simulated as slab profiles; small
  oblique tilt) and, except t1c, displaced by a small rigid motion between series.

Output images are skull-stripped (zero outside the brain) and int16, like BraTS.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from lib.brats import REFERENCE_SEQUENCE, SEQUENCES
from lib.transforms import Grid, image_from_xyz

from .grid import BRAIN_CENTRE_MNI, WorkingGrid, rotation_matrix, smooth_noise

STYLES = ("brats", "raw")
#: Typical white-matter level of each sequence at a "unit" site (int16 units).
BASE_WM_LEVEL = {"t1n": 1000.0, "t1c": 1000.0, "t2w": 450.0, "t2f": 700.0}
#: Acquisition axes (LPS world) of each plane: in-plane x, in-plane y, slice normal.
PLANES = {
    "axial": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "coronal": ((1, 0, 0), (0, 0, 1), (0, 1, 0)),
    "sagittal": ((0, 1, 0), (0, 0, 1), (1, 0, 0)),
}


@dataclass(frozen=True)
class Acquisition:
    """How one sequence was acquired. Lengths in mm, angles in degrees."""

    bias_strength: float          # std of the log bias field
    gamma: float                  # contrast exponent applied to the clean image
    blur_mm: float                # in-plane partial-volume blur (Gaussian sigma)
    noise: float                  # Rician noise sigma relative to white matter
    wm_level: float               # white-matter intensity in the stored int16 image
    offset: float                 # additive intensity offset inside the brain, relative to WM
    plane: str = "axial"
    inplane_mm: float = 1.0
    slice_mm: float = 1.0
    flips: tuple[bool, bool, bool] = (False, False, False)
    tilt_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    motion_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    motion_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Site:
    """A scanner/site: ``style`` (``brats`` or ``raw``), the stored orientation for the
    brats style, and an :class:`Acquisition` per sequence."""

    style: str
    orientation: str
    acquisitions: dict[str, Acquisition] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"style": self.style, "orientation": self.orientation,
                "acquisitions": {s: asdict(a) for s, a in self.acquisitions.items()}}


def draw_site(rng: np.random.Generator, style: str) -> Site:
    """Random site of ``style``; the scale, noise and contrast of all its sequences are
    correlated (one scanner) but each sequence still varies a little."""
    if style not in STYLES:
        raise ValueError(f"unknown style '{style}', expected one of {STYLES}")
    site_scale = float(np.exp(rng.uniform(np.log(0.25), np.log(4.0))))
    site_noise = float(rng.uniform(0.01, 0.05))
    acquisitions = {}
    for seq in SEQUENCES:
        acq = dict(
            bias_strength=float(rng.uniform(0.03, 0.25)),
            gamma=float(np.exp(rng.normal(0, 0.12))),
            blur_mm=float(rng.uniform(0.0, 0.8)),
            noise=float(site_noise * rng.uniform(0.7, 1.4)),
            wm_level=float(BASE_WM_LEVEL[seq] * site_scale * rng.uniform(0.8, 1.25)),
            offset=float(rng.uniform(-0.05, 0.15)),
        )
        if style == "raw":
            three_d = rng.random() < (0.7 if seq in ("t1c", "t1n") else 0.25)
            acq.update(
                plane=str(rng.choice(list(PLANES), p=[0.7, 0.15, 0.15])) if not three_d else
                str(rng.choice(list(PLANES), p=[0.4, 0.2, 0.4])),
                inplane_mm=float(rng.uniform(0.45, 1.0)) if not three_d else float(rng.uniform(0.9, 1.2)),
                slice_mm=float(rng.uniform(3.0, 6.0)) if not three_d else float(rng.uniform(0.9, 1.5)),
                flips=tuple(bool(f) for f in rng.random(3) < 0.3),
                tilt_deg=tuple(float(a) for a in rng.uniform(-12, 12, 3) * (rng.random() < 0.5)),
            )
            if seq != REFERENCE_SEQUENCE:
                acq.update(motion_mm=tuple(float(v) for v in rng.uniform(-4, 4, 3)),
                           motion_deg=tuple(float(v) for v in rng.uniform(-4, 4, 3)))
        acquisitions[seq] = Acquisition(**acq)
    return Site(style, str(rng.choice(["LPS", "RAS"], p=[0.6, 0.4])), acquisitions)


def apply_intensity_effects(clean: np.ndarray, acq: Acquisition, rng: np.random.Generator,
                            spacing: float) -> np.ndarray:
    """Bias field and gamma on a clean (X, Y, Z) image with WM = 1."""
    bias = np.exp(acq.bias_strength * smooth_noise(rng, clean.shape, 40.0 / spacing))
    peak = float(np.percentile(clean[clean > 0], 99.5)) if (clean > 0).any() else 1.0
    return (peak * (np.clip(clean * bias, 0, None) / peak) ** acq.gamma).astype(np.float32)


def add_rician_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the complex signal with Gaussian noise of ``sigma`` on both channels."""
    real = image + rng.normal(0, sigma, image.shape).astype(np.float32)
    imag = rng.normal(0, sigma, image.shape).astype(np.float32)
    return np.sqrt(real * real + imag * imag)


def working_image(array: np.ndarray, grid: WorkingGrid) -> sitk.Image:
    """A working-grid array (X, Y, Z, RAS) as a SimpleITK image in LPS world coordinates."""
    return image_from_xyz(array, working_itk_grid(grid))


def working_itk_grid(grid: WorkingGrid) -> Grid:
    origin = grid.affine[:3, 3]
    return Grid(grid.shape, (grid.spacing,) * 3, (-origin[0], -origin[1], origin[2]),
                (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))


def stored_brats_grid(grid: WorkingGrid, orientation: str) -> Grid:
    """The working grid stored RAS (x -> Right) or LPS (x -> Left, y -> Posterior, as BraTS)."""
    base = working_itk_grid(grid)
    if orientation == "RAS":
        return base
    corner = np.asarray(base.origin) + np.diag(np.reshape(base.direction, (3, 3))) * np.asarray(
        [(n - 1) * grid.spacing for n in grid.shape]) * np.array([1, 1, 0])
    return Grid(base.size, base.spacing, tuple(float(c) for c in corner), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))


def acquisition_grid(acq: Acquisition, brain_box_lps: np.ndarray) -> Grid:
    """The grid of one series: axes of its plane (with flips and tilt), ``inplane_mm`` x
    ``inplane_mm`` x ``slice_mm`` voxels, covering the brain box (2, 3) LPS mm + 10 mm."""
    axes = np.array(PLANES[acq.plane], float).T * np.where(acq.flips, -1.0, 1.0)
    direction = rotation_matrix(np.deg2rad(acq.tilt_deg)) @ axes
    spacing = np.array([acq.inplane_mm, acq.inplane_mm, acq.slice_mm])
    corners = np.array([[brain_box_lps[i, 0], brain_box_lps[j, 1], brain_box_lps[k, 2]]
                        for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    local = corners @ direction             # coordinates along each acquisition axis
    lo, hi = local.min(0) - 10.0, local.max(0) + 10.0
    size = np.ceil((hi - lo) / spacing).astype(int) + 1
    origin = direction @ (lo + spacing / 2)
    return Grid(tuple(int(s) for s in size), tuple(float(s) for s in spacing),
                tuple(float(o) for o in origin), tuple(float(d) for d in direction.ravel()))


def motion_centre_lps() -> np.ndarray:
    """Centre (LPS mm) of the rigid motion between series: the middle of the field of view."""
    return np.array([-BRAIN_CENTRE_MNI[0], -BRAIN_CENTRE_MNI[1], BRAIN_CENTRE_MNI[2]])


def motion_transform(acq: Acquisition, centre_lps: np.ndarray) -> sitk.Euler3DTransform:
    """Rigid motion of the head between this series and t1c, about ``centre_lps``."""
    tf = sitk.Euler3DTransform()
    tf.SetCenter([float(c) for c in centre_lps])
    tf.SetRotation(*[float(a) for a in np.deg2rad(acq.motion_deg)])
    tf.SetTranslation([float(t) for t in acq.motion_mm])
    return tf


def acquire(image: sitk.Image, brain: sitk.Image, grid: Grid, acq: Acquisition,
            transform: sitk.Transform) -> tuple[np.ndarray, np.ndarray]:
    """Sample a working-grid image onto an acquisition grid as a slab-profile scanner would:
    resample through ``transform`` onto the series' axes at 1 mm through-plane, smooth
    through-plane with the slice profile (FWHM = ``slice_mm``), then take the slices.
    Returns the image and the brain weight as arrays [x, y, z] on ``grid``."""
    fine_spacing = (grid.spacing[0], grid.spacing[1], min(1.0, grid.spacing[2]))
    fine_size = (grid.size[0], grid.size[1], int(np.ceil(grid.size[2] * grid.spacing[2] / fine_spacing[2])))
    fine = Grid(fine_size, fine_spacing, grid.origin, grid.direction)
    out = []
    for img in (image, brain):
        sampled = sitk.Resample(img, fine.reference_image(sitk.sitkFloat32), transform, sitk.sitkLinear, 0.0,
                                sitk.sitkFloat32)
        sigma_slice = acq.slice_mm / 2.355
        if sigma_slice > fine_spacing[2]:
            sampled = sitk.SmoothingRecursiveGaussian(sampled, [1e-3, 1e-3, sigma_slice])
        taken = sitk.Resample(sampled, grid.reference_image(sitk.sitkFloat32), sitk.Transform(), sitk.sitkLinear,
                              0.0, sitk.sitkFloat32)
        out.append(sitk.GetArrayFromImage(taken).transpose(2, 1, 0))
    return out[0], out[1]


def finish(image: np.ndarray, brain_weight: np.ndarray, acq: Acquisition, rng: np.random.Generator,
           voxel_mm: tuple[float, float, float]) -> np.ndarray:
    """In-plane blur, Rician noise, skull-stripping (brain weight >= 0.5), offset and scaling
    to ``wm_level``; returns int16 [x, y, z]."""
    if acq.blur_mm > 0:
        image = ndimage.gaussian_filter(image, [acq.blur_mm / voxel_mm[0], acq.blur_mm / voxel_mm[1], 0])
    # thinner voxels collect less signal: noise relative to WM grows as voxels shrink
    noise = acq.noise / np.sqrt(np.prod(voxel_mm) / 1.0)
    image = add_rician_noise(image, noise, rng)
    image = np.where(brain_weight >= 0.5, np.clip(image + acq.offset, 0.01, None), 0.0) * acq.wm_level
    return np.clip(np.round(image), 0, np.iinfo(np.int16).max).astype(np.int16)
