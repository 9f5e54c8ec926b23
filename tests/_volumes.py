"""Small synthetic volumes for the transform tests, built on the fly (no shared data).

Brain contrasts come from nilearn's bundled MNI152 2 mm templates (no download).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from nilearn import datasets

from lib.brats import SEQUENCES

#: The identity direction matrix (read-only; a default argument).
IDENTITY = np.eye(3)
IDENTITY.flags.writeable = False


@functools.lru_cache(maxsize=1)
def mni_contrasts() -> dict[str, sitk.Image]:
    """MNI152 2 mm brain-masked contrasts as SimpleITK images (LPS world, physical mm):
    ``t1`` (T1 template), ``t2`` (T2-like: CSF bright, GM mid, WM dark), ``mask``."""
    t1 = datasets.load_mni152_template(resolution=2)
    mask = datasets.load_mni152_brain_mask(resolution=2)
    gm = datasets.load_mni152_gm_template(resolution=2).get_fdata()
    wm = datasets.load_mni152_wm_template(resolution=2).get_fdata()
    m = mask.get_fdata() > 0.5
    csf = np.clip(1.0 - gm - wm, 0, 1)
    t2 = (900 * csf + 600 * gm + 300 * wm) * m
    out = {}
    for name, arr in (("t1", t1.get_fdata() * m), ("t2", t2), ("mask", m.astype(np.float32))):
        out[name] = nifti_to_sitk(np.asarray(arr, np.float32), t1.affine)
    return out


def nifti_to_sitk(arr: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """Array indexed [i, j, k] with a RAS affine -> SimpleITK image (LPS world)."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)))
    lps = np.diag([-1.0, -1.0, 1.0]) @ affine[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    img.SetSpacing(spacing.tolist())
    img.SetDirection((lps / spacing).ravel().tolist())
    img.SetOrigin((np.diag([-1.0, -1.0, 1.0]) @ affine[:3, 3]).tolist())
    return img


def rotation_matrix(angles_deg: tuple[float, float, float]) -> np.ndarray:
    ax, ay, az = (math.radians(a) for a in angles_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def make_grid(size, spacing, origin, direction=IDENTITY) -> sitk.Image:
    img = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    img.SetSpacing([float(s) for s in spacing])
    img.SetOrigin([float(o) for o in origin])
    img.SetDirection(np.asarray(direction, float).ravel().tolist())
    return img


def grid_centered_on(centre, size, spacing, direction=IDENTITY) -> sitk.Image:
    """Empty Float32 image of the given grid whose centre is at physical point ``centre``."""
    d = np.asarray(direction, float)
    half = d @ ((np.asarray(size) - 1) / 2 * np.asarray(spacing))
    return make_grid(size, spacing, np.asarray(centre) - half, d)


def physical_centre(img: sitk.Image) -> np.ndarray:
    return np.asarray(img.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in img.GetSize()]))


def resample_onto(src: sitk.Image, ref: sitk.Image, transform: sitk.Transform | None = None,
                  interp=sitk.sitkLinear) -> sitk.Image:
    return sitk.Resample(src, ref, transform or sitk.Transform(3, sitk.sitkIdentity), interp, 0.0,
                         src.GetPixelID())


def write(img: sitk.Image, path: Path) -> Path:
    sitk.WriteImage(img, str(path))
    return path


def write_case(folder: Path, case_id: str, images: dict[str, sitk.Image], label: sitk.Image | None = None,
               ext: str = ".nii.gz") -> Path:
    """Write a case folder in BraTS naming."""
    folder.mkdir(parents=True, exist_ok=True)
    for seq in SEQUENCES:
        write(images[seq], folder / f"{case_id}-{seq}{ext}")
    if label is not None:
        write(label, folder / f"{case_id}-seg{ext}")
    return folder


def sphere_case(size=(48, 48, 40), spacing=(2.0, 2.0, 2.0), origin=(0.0, 0.0, 0.0), direction=IDENTITY,
                head: bool = False, seed: int = 0) -> tuple[dict[str, sitk.Image], sitk.Image]:
    """Four sequences + label of a toy head on one grid: an ellipsoidal "brain" (exactly 0
    outside unless ``head``: then a noisy background and a bright skull shell) holding a tumor:
    edema (2) sphere r=18 mm, enhancing shell (3) r 7-11 mm, necrosis (1) core r<7 mm."""
    ref = make_grid(size, spacing, origin, direction)
    rng = np.random.default_rng(seed)
    idx = np.indices(size).reshape(3, -1).T.astype(float)
    d = np.asarray(direction, float)
    pts = (d @ (idx * np.asarray(spacing)).T).T + np.asarray(origin)
    centre = pts.mean(0)
    half = (np.asarray(size) - 1) * np.asarray(spacing) / 2
    local = (pts - centre) @ d  # coordinates along the image axes
    r_brain = np.sqrt(((local / (half * 0.75)) ** 2).sum(1))
    brain = r_brain < 1
    tumor_c = centre + d @ (half * np.array([0.2, -0.1, 0.1]))
    rt = np.linalg.norm(pts - tumor_c, axis=1)
    lab = np.zeros(len(pts), np.uint8)
    lab[brain & (rt < 18)] = 2
    lab[brain & (rt < 11)] = 3
    lab[brain & (rt < 7)] = 1
    base = {"t1n": (400, 600, 300, 200), "t1c": (500, 700, 900, 250), "t2w": (800, 500, 600, 900),
            "t2f": (600, 700, 650, 400)}
    imgs = {}
    for seq, (bg, ed, et, ncr) in base.items():
        v = np.zeros(len(pts), np.float32)
        v[brain] = bg * (1 + 0.15 * np.cos(local[brain, 0] / 9.0) * np.sin(local[brain, 1] / 7.0))
        v[lab == 2], v[lab == 3], v[lab == 1] = ed, et, ncr
        v[brain] += rng.normal(0, 15, int(brain.sum()))
        if head:
            v[~brain] = np.abs(rng.normal(20, 8, int((~brain).sum())))
            skull = (r_brain >= 1.05) & (r_brain < 1.25)
            v[skull] = 700 + rng.normal(0, 20, int(skull.sum()))
        arr = v.reshape(size)
        img = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)))
        img.CopyInformation(ref)
        imgs[seq] = img
    lab_img = sitk.GetImageFromArray(np.ascontiguousarray(lab.reshape(size).transpose(2, 1, 0)))
    lab_img.CopyInformation(ref)
    return imgs, lab_img


def label_volumes_ml(label: sitk.Image) -> dict[int, float]:
    arr = sitk.GetArrayViewFromImage(label)
    vox = float(np.prod(label.GetSpacing())) / 1000.0
    return {c: float((arr == c).sum()) * vox for c in (1, 2, 3)}
