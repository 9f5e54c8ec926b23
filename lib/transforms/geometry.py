"""Reorientation, rigid co-registration onto t1c, and the single resampling onto the RAS working grid.

Order in the pipeline: :class:`ReorientToRASd` (permute/flip only, no interpolation) ->
:class:`CoRegisterd` (estimates one rigid transform per sequence; identity when a
sequence is already on the t1c grid) -> :class:`ResampleToRASGridd` (every sequence is
interpolated exactly once, through its transform, onto an isotropic RAS grid covering t1c
at the model's working spacing;
labels with one-hot linear interpolation + argmax).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from monai.transforms import MapTransform

from lib.brats import REFERENCE_SEQUENCE, SEQUENCES
from lib.errors import RegistrationError

from ._common import RAS_DIRECTION, CaseGeometry, Grid, array_xyz

#: Number of label classes (background + NCR, ED, ET).
N_LABEL_CLASSES = 4


# --------------------------------------------------------------------------- reorientation
def reorient_to_ras(image: sitk.Image) -> sitk.Image:
    """Permute and flip the axes of a 3D image (no interpolation) so that index x, y, z run
    as close as possible to Right, Anterior, Superior. Physical space is unchanged; an
    oblique image stays oblique (its closest RAS permutation)."""
    d = np.asarray(image.GetDirection()).reshape(3, 3)  # columns: axis directions in LPS world
    order: list[int] = []
    for world_axis in range(3):  # for output axis j choose the input axis most aligned with world axis j
        weights = np.abs(d[world_axis]).copy()
        weights[order] = -1.0
        order.append(int(np.argmax(weights)))
    out = image if order == [0, 1, 2] else sitk.PermuteAxes(image, order)
    d2 = np.asarray(out.GetDirection()).reshape(3, 3)
    want = np.asarray(RAS_DIRECTION).reshape(3, 3).diagonal()  # LPS signs of RAS axes: -1, -1, +1
    flips = [bool(np.sign(d2[j, j]) != want[j]) for j in range(3)]
    if any(flips):
        out = sitk.Flip(out, flips, flipAboutOrigin=False)
    return out


class ReorientToRASd(MapTransform):
    """Reorient the 3D ``sitk.Image`` under each key to RAS axis order (see :func:`reorient_to_ras`).
    Reads/writes ``data[key]`` in place; missing keys are skipped by default."""

    def __init__(self, keys: Sequence[str] = (*SEQUENCES, "label"), allow_missing_keys: bool = True) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = reorient_to_ras(d[key])
        return d


# --------------------------------------------------------------------------- registration
def physical_overlap(a: Grid, b: Grid) -> float:
    """Volume of the intersection of the (axis-aligned, LPS) bounding boxes of two grids,
    as a fraction of the smaller box. 0 means no overlap at all."""
    ca, cb = a.corners(), b.corners()
    lo = np.maximum(ca.min(0), cb.min(0))
    hi = np.minimum(ca.max(0), cb.max(0))
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    va = float(np.prod(ca.max(0) - ca.min(0)))
    vb = float(np.prod(cb.max(0) - cb.min(0)))
    return inter / max(min(va, vb), 1e-9)


@dataclass(frozen=True)
class RegistrationResult:
    """Outcome of :func:`register_rigid`: ``transform`` maps fixed (t1c) physical points (mm)
    to moving physical points; ``metric`` is the final Mattes metric (negative MI, lower is
    better); ``rotation_deg`` and ``translation_mm`` summarise the transform; ``coverage`` is
    the fraction of the fixed foreground that lands inside the moving image afterwards."""

    transform: sitk.Euler3DTransform
    metric: float
    rotation_deg: float
    translation_mm: float
    coverage: float
    stop_condition: str


def _foreground_mask(image: sitk.Image) -> sitk.Image:
    """Rough foreground: non-zero voxels when the background is exactly zero, else Otsu."""
    arr = sitk.GetArrayViewFromImage(image)
    if (arr == 0).mean() > 0.2:
        return sitk.Cast(image != 0, sitk.sitkUInt8)
    return sitk.OtsuThreshold(image, 0, 1)


def _shrink(image: sitk.Image, target_mm: float) -> sitk.Image:
    factors = [max(1, int(round(target_mm / s))) for s in image.GetSpacing()]
    return sitk.BinShrink(image, factors)


def _isotropic(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    """``image`` on an axis-aligned grid of ``spacing_mm`` voxels covering it (float32), low-pass
    filtered first along axes finer than that. Registration runs on such copies because the
    pyramid's shrink factors count voxels, which would flatten a 5 mm slice axis to 20 mm."""
    sigmas = [0.4 * spacing_mm if s < spacing_mm else 1e-3 for s in image.GetSpacing()]
    smooth = sitk.SmoothingRecursiveGaussian(sitk.Cast(image, sitk.sitkFloat32), sigmas)
    corners = Grid.of(image).corners()
    lo, hi = corners.min(0), corners.max(0)
    size = [max(1, int(np.ceil(e / spacing_mm))) for e in hi - lo]
    ref = Grid(tuple(size), (spacing_mm,) * 3, tuple(float(v) for v in lo + spacing_mm / 2),
               (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    return sitk.Resample(smooth, ref.reference_image(sitk.sitkFloat32), sitk.Transform(), sitk.sitkLinear, 0.0,
                         sitk.sitkFloat32)


def _centroid_initialisation(fixed: sitk.Image, moving: sitk.Image) -> sitk.Euler3DTransform:
    """Rigid start that superimposes the centroids of the two foreground masks: unlike intensity
    moments, it is not pulled by bias fields or by contrast that differs between sequences."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    centroids = []
    for image in (fixed, moving):
        stats.Execute(_foreground_mask(image))
        centroids.append(np.asarray(stats.GetCentroid(1)))
    tf = sitk.Euler3DTransform()
    tf.SetCenter([float(v) for v in centroids[0]])
    tf.SetTranslation([float(v) for v in centroids[1] - centroids[0]])
    return tf


def register_rigid(fixed: sitk.Image, moving: sitk.Image, case_id: str | None = None,
                   moving_path: str | Path | None = None, *, min_overlap: float = 0.1,
                   max_rotation_deg: float = 45.0, min_coverage: float = 0.5,
                   samples_per_level: int = 40000, seed: int = 20231,
                   working_spacing_mm: float = 2.0) -> RegistrationResult:
    """Rigid (Euler3D) multi-modal registration of ``moving`` onto ``fixed``.

    Mattes mutual information (50 bins, random sampling ~``samples_per_level`` points per
    level over the whole field of view: a fixed-image brain mask was tried and lost the
    brain outline, which carries much of the information), regular-step gradient descent
    (initial step 2 mm, relaxation 0.5, minimum step 1e-3) with physical-shift scaling, on isotropic
    ``working_spacing_mm`` copies of both images (so thick-slice and anisotropic series register
    as well as 3D ones), 2 levels (shrink 2, 1 of that; smoothing 2, 0 mm), initialised by
    superimposing the centroids of the two foreground masks.

    Checks: before, the physical bounding boxes must overlap by at least ``min_overlap``
    (fraction of the smaller box); after, the rotation must be below ``max_rotation_deg``
    and at least ``min_coverage`` of the fixed foreground must map inside the moving
    image, and the metric must show some mutual information. Any failure, including an
    ITK exception, raises :class:`RegistrationError` naming the case and ``moving_path``.
    """
    fg, mg = Grid.of(fixed), Grid.of(moving)
    ov = physical_overlap(fg, mg)
    if ov < min_overlap:
        raise RegistrationError(
            f"image does not overlap the {REFERENCE_SEQUENCE} image in physical space "
            f"(bounding-box overlap {ov:.0%}, need {min_overlap:.0%}); registration impossible",
            case_id, moving_path)
    fixed_f = _isotropic(fixed, working_spacing_mm)
    moving_f = _isotropic(moving, working_spacing_mm)
    try:
        init = _centroid_initialisation(fixed_f, moving_f)
        reg = sitk.ImageRegistrationMethod()
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        n_vox = float(np.prod(fixed.GetSize()))
        shrink = [2, 1]
        pct = [min(1.0, samples_per_level / (n_vox / f ** 3)) for f in shrink]
        reg.SetMetricSamplingPercentagePerLevel(pct, seed)
        reg.SetInterpolator(sitk.sitkLinear)
        reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=200,
                                                     relaxationFactor=0.5)
        reg.SetOptimizerScalesFromPhysicalShift()
        reg.SetShrinkFactorsPerLevel(shrink)
        reg.SetSmoothingSigmasPerLevel([2.0, 0.0])
        reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
        reg.SetInitialTransform(init, inPlace=False)
        out = reg.Execute(fixed_f, moving_f)
        metric = float(reg.GetMetricValue())
        stop = reg.GetOptimizerStopConditionDescription()
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise RegistrationError(f"registration failed ({lines[-1][:200] if lines else exc})",
                                case_id, moving_path) from None
    composite = sitk.CompositeTransform(out)
    composite.FlattenTransform()
    euler = sitk.Euler3DTransform(composite.GetNthTransform(0)) if composite.GetNumberOfTransforms() == 1 \
        else sitk.Euler3DTransform(out)
    rot = np.asarray(euler.GetMatrix()).reshape(3, 3)
    angle = math.degrees(math.acos(max(-1.0, min(1.0, (np.trace(rot) - 1) / 2))))
    trans = float(np.linalg.norm(np.asarray(euler.TransformPoint(euler.GetCenter())) - np.asarray(euler.GetCenter())))
    # coverage: fraction of the (coarse) fixed foreground that maps inside the moving image
    coarse_mask = _shrink(_foreground_mask(fixed_f), 4.0)
    ones = sitk.Image(moving.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(moving)
    inside = sitk.Resample(ones, coarse_mask, euler, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    m = sitk.GetArrayViewFromImage(coarse_mask) > 0
    coverage = float((sitk.GetArrayViewFromImage(inside)[m] > 0).mean()) if m.any() else 0.0
    problems = []
    if angle > max_rotation_deg:
        problems.append(f"rotation {angle:.1f} deg exceeds {max_rotation_deg:.0f} deg")
    if coverage < min_coverage:
        problems.append(f"only {coverage:.0%} of the {REFERENCE_SEQUENCE} foreground maps inside the image")
    if not metric < -0.02:
        problems.append(f"no mutual information after registration (metric {metric:.4f})")
    if problems:
        raise RegistrationError("registration failed: " + "; ".join(problems), case_id, moving_path)
    return RegistrationResult(euler, metric, angle, trans, coverage, stop)


#: The sequences registered onto the reference (t1c).
MOVING_SEQUENCES: tuple[str, ...] = tuple(s for s in SEQUENCES if s != REFERENCE_SEQUENCE)


class CoRegisterd(MapTransform):
    """Rigidly co-register each sequence under ``keys`` onto ``data[reference]`` (t1c).

    Reads the 3D ``sitk.Image`` under each key and ``reference``; a sequence whose grid
    matches the reference grid (same size, spacing/origin/direction within tolerance) is
    taken as already co-registered (BraTS data) and gets the identity. Writes
    ``data["transforms"]``: dict sequence -> ``sitk.Transform`` mapping reference physical
    points (mm) to that sequence's physical points (identity for the reference itself),
    ``data["registration"]``: dict sequence -> :class:`RegistrationResult` or ``None``,
    and ``data["geometry"].registered``. Images are not modified (resampling happens once,
    later). Raises :class:`RegistrationError` naming the case and the sequence's file.
    """

    def __init__(self, keys: Sequence[str] = MOVING_SEQUENCES,
                 reference: str = REFERENCE_SEQUENCE, force: bool = False, **register_kwargs: Any) -> None:
        super().__init__(keys)
        self.reference = reference
        self.force = force
        self.register_kwargs = register_kwargs

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        ref = d[self.reference]
        ref_grid = Grid.of(ref)
        files = d.get("source_files", {})
        transforms: dict[str, sitk.Transform] = {self.reference: sitk.Euler3DTransform()}
        results: dict[str, RegistrationResult | None] = {self.reference: None}
        geometry: CaseGeometry | None = d.get("geometry")
        for key in self.key_iterator(d):
            img = d[key]
            if not self.force and Grid.of(img).matches(ref_grid):
                transforms[key] = sitk.Euler3DTransform()
                results[key] = None
            else:
                res = register_rigid(ref, img, d.get("case_id"), files.get(key), **self.register_kwargs)
                transforms[key] = res.transform
                results[key] = res
            if geometry is not None:
                geometry.registered[key] = results[key] is not None
        d["transforms"] = transforms
        d["registration"] = results
        return d


# --------------------------------------------------------------------------- resampling
def ras_grid_covering(reference: Grid, spacing: float = 1.0) -> Grid:
    """The RAS grid of isotropic ``spacing`` (mm) whose box covers the reference grid's box.
    When the reference is already RAS with that spacing the result is exactly its grid."""
    c = reference.corners()
    lo, hi = c.min(0), c.max(0)
    signs = np.asarray(RAS_DIRECTION).reshape(3, 3).diagonal()
    extent = hi - lo
    size = tuple(int(max(1, math.ceil(e / spacing - 1e-3))) for e in extent)
    origin = tuple(float(hi[i] - spacing / 2 if signs[i] < 0 else lo[i] + spacing / 2) for i in range(3))
    return Grid(size, (spacing,) * 3, origin, RAS_DIRECTION)


def resample_image(image: sitk.Image, grid: Grid, transform: sitk.Transform | None = None,
                   interpolator: int = sitk.sitkLinear, default: float = 0.0) -> sitk.Image:
    """Interpolate ``image`` (Float32 out) on ``grid``; ``transform`` maps grid physical points
    to ``image`` physical points (identity when None). Outside the image: ``default``."""
    return sitk.Resample(image, grid.reference_image(), transform or sitk.Transform(3, sitk.sitkIdentity),
                         interpolator, default, sitk.sitkFloat32)


def resample_label(label: sitk.Image, grid: Grid, transform: sitk.Transform | None = None,
                   n_classes: int = N_LABEL_CLASSES) -> sitk.Image:
    """Volume-preserving label resampling: each class's one-hot map is linearly interpolated
    on ``grid`` and the class of highest weight is taken (ties -> lower class). Outside the
    label: background. Returns UInt8 on ``grid``.

    Only the part of ``grid`` that the label's foreground can reach is interpolated (its
    bounding box, one voxel wider for the interpolation); the rest is background by
    construction. Restoring a 2 mm prediction onto a 240 x 240 x 155 t1c grid thus costs
    the size of the tumor, not of the head."""
    tf = transform or sitk.Transform(3, sitk.sitkIdentity)
    best = np.zeros(tuple(reversed(grid.size)), np.uint8)  # (z, y, x), as SimpleITK arrays are
    box = _foreground_box(label, grid, tf)
    if box is not None:
        start, stop = box
        sub = grid.sub_grid(start, stop)
        ref = sub.reference_image()
        sub_best = np.zeros(tuple(reversed(sub.size)), np.uint8)
        best_w = np.full(sub_best.shape, -np.inf, np.float32)
        for c in range(n_classes):
            onehot = sitk.Cast(label == c, sitk.sitkFloat32)
            w = sitk.GetArrayFromImage(sitk.Resample(onehot, ref, tf, sitk.sitkLinear, 1.0 if c == 0 else 0.0,
                                                     sitk.sitkFloat32))
            upd = w > best_w
            sub_best[upd] = c
            best_w = np.where(upd, w, best_w)
        best[start[2]:stop[2], start[1]:stop[1], start[0]:stop[0]] = sub_best
    return grid.apply_to(sitk.GetImageFromArray(best))


def _foreground_box(label: sitk.Image, grid: Grid, transform: sitk.Transform) -> tuple[list[int], list[int]] | None:
    """Voxel box ``[start, stop)`` (x, y, z) of ``grid`` outside which every point interpolates
    to background: the label's nonzero voxels one voxel wider, carried onto ``grid`` (through
    the inverse of ``transform``, which maps grid points to label points). None: no foreground.
    The whole grid when the transform cannot be inverted."""
    nonzero = np.argwhere(sitk.GetArrayViewFromImage(label) > 0)
    if len(nonzero) == 0:
        return None
    lo, hi = nonzero.min(0)[::-1] - 1.0, nonzero.max(0)[::-1] + 1.0  # (x, y, z) label indices
    corners = [label.TransformContinuousIndexToPhysicalPoint([float(v) for v in np.where(bits, hi, lo)])
               for bits in np.ndindex(2, 2, 2)]
    try:
        inverse = transform.GetInverse()
    except RuntimeError:
        return [0, 0, 0], list(grid.size)
    index = grid.index_of(np.asarray([inverse.TransformPoint(c) for c in corners]))
    start = np.clip(np.floor(index.min(0)) - 1, 0, grid.size).astype(int)
    stop = np.clip(np.ceil(index.max(0)) + 2, 0, grid.size).astype(int)
    if (stop <= start).any():
        return None
    return start.tolist(), stop.tolist()


class ResampleToRASGridd(MapTransform):
    """Resample every sequence once onto an isotropic RAS grid covering the reference (t1c).

    Reads ``data[seq]`` (3D ``sitk.Image``) for ``keys``, ``data["transforms"]`` (from
    :class:`CoRegisterd`; identity when absent) and, when present, label keys (``sitk.Image``
    on the reference grid). Writes ``data[seq]`` as float32 ``np.ndarray`` (X, Y, Z) in RAS
    order at ``spacing`` mm, ``data[label_key]`` as uint8 (X, Y, Z), and sets
    ``data["geometry"].ras_grid``. Sequences: linear interpolation, 0 outside their FOV;
    labels: :func:`resample_label`.
    """

    def __init__(self, keys: Sequence[str] = SEQUENCES, label_keys: Sequence[str] = ("label",),
                 reference: str = REFERENCE_SEQUENCE, spacing: float = 1.0) -> None:
        super().__init__(keys)
        self.label_keys = tuple(label_keys)
        self.reference = reference
        self.spacing = float(spacing)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        grid = ras_grid_covering(Grid.of(d[self.reference]), self.spacing)
        transforms = d.get("transforms", {})
        for key in self.key_iterator(d):
            d[key] = array_xyz(resample_image(d[key], grid, transforms.get(key))).astype(np.float32, copy=False)
        for key in self.label_keys:
            if key in d and d[key] is not None:
                d[key] = array_xyz(resample_label(d[key], grid))
        if isinstance(d.get("geometry"), CaseGeometry):
            d["geometry"].ras_grid = grid
        return d


class StackSequencesd(MapTransform):
    """Stack per-sequence (X, Y, Z) arrays into ``data[output_key]`` float32 (C, X, Y, Z), channel
    order = ``keys`` (default t1n, t1c, t2w, t2f), deleting the per-sequence keys; label keys
    holding (X, Y, Z) arrays get a leading channel axis: uint8 (1, X, Y, Z)."""

    def __init__(self, keys: Sequence[str] = SEQUENCES, output_key: str = "image",
                 label_keys: Sequence[str] = ("label",)) -> None:
        super().__init__(keys)
        self.output_key = output_key
        self.label_keys = tuple(label_keys)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        d[self.output_key] = np.stack([np.asarray(d.pop(k), np.float32) for k in self.keys], 0)
        for key in self.label_keys:
            if key in d and d[key] is not None and np.ndim(d[key]) == 3:
                d[key] = np.asarray(d[key], np.uint8)[None]
        return d
