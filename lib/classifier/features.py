"""Voxel features of the classifier, as MONAI dictionary transforms on the preprocessing's output.

Every transform reads the working grid the preprocessing gives (:func:`lib.transforms.build_preprocessing`
with the checkpoint's resolution, Nyúl landmarks and z-score): ``image`` float32 (4, X, Y, Z),
channels t1n, t1c, t2w, t2f, RAS (axis 0 runs from the patient's left to right), isotropic
``spacing_mm``; ``brain_mask`` uint8 (1, X, Y, Z). Training and serving call the same
transforms on the same grid, so a feature means the same thing in both.

Each transform adds named maps to ``data["features"]``, a ``dict`` of float32 (X, Y, Z) volumes
in insertion order; :class:`BrainVoxelsd` then stacks them into the (N, F) matrix of the N brain
voxels the classifier sees. Units: intensities are brain z-scores (the preprocessing's), distances
mm, positions fractions of the brain's bounding box, probabilities 0-1. Scales are given in
voxels of the working grid (σ 1, 2, 4 voxels = 2, 4, 8 mm at 2 mm).

The left-right mirror difference (the asymmetry features of Tustison et al., 2015) compares a
voxel with its mirror image across the midline: the sagittal plane through the brain mask's
centre of mass. A tumor is one-sided far more often than not, so "brighter on FLAIR than the same
place on the other side" separates it from symmetric bright tissue (cortex, ventricle lining).

Bump :data:`FEATURES_VERSION` whenever a feature changes: a classifier records the version and
the names it was trained on and refuses features of another version.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.transforms import MapTransform
from scipy import ndimage

from lib.brats import SEQUENCES

#: Version of the feature definitions; recorded in every classifier.
FEATURES_VERSION = 1
#: Gaussian scales (voxels of the working grid) of the smoothed intensities and mirror differences.
SCALES_VOX: tuple[float, ...] = (1.0, 2.0, 4.0)
#: The four-sequence differences (first minus second), in :data:`lib.brats.SEQUENCES` names.
SEQUENCE_DIFFERENCES: tuple[tuple[str, str], ...] = (("t2f", "t1n"), ("t1c", "t1n"), ("t2w", "t1n"), ("t2f", "t2w"))
#: The FLAIR-threshold floor: FLAIR brain z-score above this, opened, largest component.
FLOOR_Z = 1.25

FeatureMaps = dict[str, np.ndarray]


def _features(d: dict[Hashable, Any]) -> FeatureMaps:
    maps = d.setdefault("features", {})
    assert isinstance(maps, dict)
    return maps


def _channels(d: Mapping[Hashable, Any], key: str) -> np.ndarray:
    return np.asarray(d[key], np.float32)


def _brain(d: Mapping[Hashable, Any], key: str) -> np.ndarray:
    return np.asarray(d[key])[0].astype(bool)


def midline_vox(brain: np.ndarray) -> float:
    """Index along axis 0 (left-right) of the sagittal plane through the centre of mass of a
    (X, Y, Z) brain mask; the middle of the array for an empty mask."""
    if not brain.any():
        return (brain.shape[0] - 1) / 2.0
    return float(np.mean(np.nonzero(brain)[0]))


def mirror(volume: np.ndarray, midline: float) -> np.ndarray:
    """(X, Y, Z) ``volume`` reflected across the sagittal plane ``x = midline`` (voxels), the
    plane rounded to the nearest half voxel (at most a quarter voxel off): ``out[x] =
    volume[2 * midline - x]``, edge values beyond the array. An index flip, no interpolation."""
    reflected = np.clip(round(2.0 * midline) - np.arange(volume.shape[0]), 0, volume.shape[0] - 1)
    return volume[reflected]


def brain_percentile(volume: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Rank of each brain voxel's value among the brain's values, 0-1 (0 outside the brain)."""
    out = np.zeros(volume.shape, np.float32)
    values = volume[brain]
    if values.size:
        ranks = np.empty(values.size, np.float32)
        ranks[np.argsort(values, kind="stable")] = np.arange(values.size, dtype=np.float32)
        out[brain] = ranks / max(1, values.size - 1)
    return out


class SmoothedSequencesd(MapTransform):
    """Gaussian-smoothed copies of every channel of ``data[image_key]`` (4, X, Y, Z) at the
    scales ``scales_vox`` (voxels), written to ``data[out_key]``: ``{sigma: float32 (4, X, Y, Z)}``.
    Shared by :class:`IntensityFeaturesd` and :class:`MirrorAsymmetryd`, so each filter runs once."""

    def __init__(self, image_key: str = "image", out_key: str = "smoothed",
                 scales_vox: Sequence[float] = SCALES_VOX) -> None:
        super().__init__([image_key])
        self.image_key, self.out_key, self.scales_vox = image_key, out_key, tuple(scales_vox)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image = _channels(d, self.image_key)
        d[self.out_key] = {s: np.stack([ndimage.gaussian_filter(c, s, truncate=3.0) for c in image])
                           for s in self.scales_vox}
        return d


class IntensityFeaturesd(MapTransform):
    """Per sequence (``<seq>_...``): the z-score (``z``), its percentile among brain voxels
    (``pct``, 0-1), Gaussian means at each scale (``g<σ>``), the local standard deviation at σ 2
    (``sd2``), the gradient magnitude of the σ 1 mean (``grad1``, z per voxel) and a difference of
    Gaussians σ 1 minus σ 4 (``dog``). Reads ``image`` (4, X, Y, Z), ``brain_mask`` (1, X, Y, Z)
    and the output of :class:`SmoothedSequencesd`."""

    def __init__(self, image_key: str = "image", mask_key: str = "brain_mask", smoothed_key: str = "smoothed",
                 sequences: Sequence[str] = SEQUENCES) -> None:
        super().__init__([image_key])
        self.image_key, self.mask_key, self.smoothed_key = image_key, mask_key, smoothed_key
        self.sequences = tuple(sequences)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image, brain, smoothed = _channels(d, self.image_key), _brain(d, self.mask_key), d[self.smoothed_key]
        maps = _features(d)
        for i, seq in enumerate(self.sequences):
            v = image[i]
            maps[f"{seq}_z"] = v
            maps[f"{seq}_pct"] = brain_percentile(v, brain)
            for s, g in smoothed.items():
                maps[f"{seq}_g{s:g}"] = g[i]
            mean2 = smoothed[2.0][i]
            maps[f"{seq}_sd2"] = np.sqrt(np.maximum(ndimage.gaussian_filter(v * v, 2.0, truncate=3.0) - mean2 ** 2,
                                                    0)).astype(np.float32)
            maps[f"{seq}_grad1"] = np.sqrt(sum(g * g for g in np.gradient(smoothed[1.0][i]))).astype(np.float32)
            maps[f"{seq}_dog"] = smoothed[1.0][i] - smoothed[4.0][i]
        return d


class MirrorAsymmetryd(MapTransform):
    """Per sequence and scale (``<seq>_mirror<σ>``): the Gaussian mean at σ minus the same at the
    voxel's mirror image across the midline (:func:`midline_vox`, :func:`mirror`), in z. Zero for a
    volume symmetric about the midline; positive where a voxel is brighter than its mirror
    (a one-sided FLAIR-bright lesion is positive on its side and negative opposite). Reads
    ``brain_mask`` (1, X, Y, Z) and the output of :class:`SmoothedSequencesd`."""

    def __init__(self, mask_key: str = "brain_mask", smoothed_key: str = "smoothed",
                 sequences: Sequence[str] = SEQUENCES) -> None:
        super().__init__([mask_key])
        self.mask_key, self.smoothed_key, self.sequences = mask_key, smoothed_key, tuple(sequences)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        midline = midline_vox(_brain(d, self.mask_key))
        maps = _features(d)
        for i, seq in enumerate(self.sequences):
            for s, g in d[self.smoothed_key].items():
                maps[f"{seq}_mirror{s:g}"] = g[i] - mirror(g[i], midline)
        return d


class SequenceDifferencesd(MapTransform):
    """Differences between sequences (``<a>_minus_<b>``, z): FLAIR - T1, T1c - T1, T2 - T1 and
    FLAIR - T2 voxel by voxel, and T1c - T1 also at σ 2 and 4 (``t1c_minus_t1n_g<σ>``): enhancement
    is tumor brighter on T1c than on T1, at the scale of a rim and of a core. Reads ``image``
    (4, X, Y, Z) and the output of :class:`SmoothedSequencesd`."""

    def __init__(self, image_key: str = "image", smoothed_key: str = "smoothed",
                 differences: Sequence[tuple[str, str]] = SEQUENCE_DIFFERENCES) -> None:
        super().__init__([image_key])
        self.image_key, self.smoothed_key, self.differences = image_key, smoothed_key, tuple(differences)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image, maps = _channels(d, self.image_key), _features(d)
        for a, b in self.differences:
            maps[f"{a}_minus_{b}"] = image[SEQUENCES.index(a)] - image[SEQUENCES.index(b)]
        t1c, t1n = SEQUENCES.index("t1c"), SEQUENCES.index("t1n")
        for s in (2.0, 4.0):
            g = d[self.smoothed_key][s]
            maps[f"t1c_minus_t1n_g{s:g}"] = g[t1c] - g[t1n]
        return d


class PositionFeaturesd(MapTransform):
    """Where a voxel is: its position in the brain's bounding box along each axis (``pos_x``,
    ``pos_y``, ``pos_z``; 0-1, RAS: right, anterior, superior), its distance to the midline
    (``midline_mm``) and to the brain's edge (``edge_mm``, 0 outside the brain). Reads
    ``brain_mask`` (1, X, Y, Z); ``spacing_mm`` is the working grid's (isotropic)."""

    def __init__(self, spacing_mm: float, mask_key: str = "brain_mask") -> None:
        super().__init__([mask_key])
        self.spacing_mm, self.mask_key = float(spacing_mm), mask_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        brain = _brain(d, self.mask_key)
        maps = _features(d)
        shape = brain.shape
        nonzero = np.nonzero(brain) if brain.any() else [np.array([0, n - 1]) for n in shape]
        for axis, name in enumerate("xyz"):
            lo, hi = float(nonzero[axis].min()), float(nonzero[axis].max())
            coords = (np.arange(shape[axis], dtype=np.float32) - lo) / max(1.0, hi - lo)
            view = [1, 1, 1]
            view[axis] = shape[axis]
            maps[f"pos_{name}"] = np.broadcast_to(coords.reshape(view), shape).astype(np.float32)
        midline = midline_vox(brain)
        x = np.abs(np.arange(shape[0], dtype=np.float32) - midline) * self.spacing_mm
        maps["midline_mm"] = np.broadcast_to(x[:, None, None], shape).astype(np.float32)
        maps["edge_mm"] = (ndimage.distance_transform_edt(brain) * self.spacing_mm).astype(np.float32)
        return d


def flair_floor_mask(flair: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """The FLAIR floor on one (X, Y, Z) grid: brain voxels whose FLAIR brain z-score exceeds
    :data:`FLOOR_Z`, binary opening (one iteration, 6-neighbourhood), largest connected
    component. ``flair`` is z-scored again over ``brain`` here, so any intensity scale works."""
    values = flair[brain]
    if values.size == 0 or values.std() == 0:
        return np.zeros(flair.shape, bool)
    z = (flair - values.mean()) / values.std()
    mask = ndimage.binary_opening(brain & (z > FLOOR_Z))
    components, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return components == int(np.argmax(sizes))


class FlairFloord(MapTransform):
    """The FLAIR floor (:func:`flair_floor_mask`) of ``data[image_key]`` (4, X, Y, Z) inside
    ``data[mask_key]`` (1, X, Y, Z) as ``data[out_key]`` bool (X, Y, Z); with ``as_features`` also
    the features ``floor`` (0/1) and ``floor_mm`` (distance to the floor's component, 0 inside)."""

    def __init__(self, spacing_mm: float, image_key: str = "image", mask_key: str = "brain_mask",
                 out_key: str = "floor", as_features: bool = True) -> None:
        super().__init__([image_key])
        self.spacing_mm, self.image_key, self.mask_key, self.out_key = float(spacing_mm), image_key, mask_key, out_key
        self.as_features = as_features

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        floor = flair_floor_mask(_channels(d, self.image_key)[SEQUENCES.index("t2f")], _brain(d, self.mask_key))
        d[self.out_key] = floor
        if self.as_features:
            maps = _features(d)
            maps["floor"] = floor.astype(np.float32)
            maps["floor_mm"] = _distance_mm(floor, self.spacing_mm)
        return d


def _distance_mm(mask: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Distance (mm) of every voxel to ``mask`` (0 inside); a large constant when it is empty."""
    if not mask.any():
        return np.full(mask.shape, 200.0, np.float32)
    return np.minimum(ndimage.distance_transform_edt(~mask) * spacing_mm, 200.0).astype(np.float32)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a bool (X, Y, Z) mask (empty stays empty)."""
    components, n = ndimage.label(mask, np.ones((3, 3, 3), bool))
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return components == int(np.argmax(sizes))


class RegionContextd(MapTransform):
    """Context features from region probabilities ``data[prob_key]`` float (3, X, Y, Z) (WT, TC, ET,
    0-1), named ``<prefix>_...``: each region as is and smoothed at σ 1, 2, 4 voxels
    (``<prefix>_<region>_g<σ>``), the whole tumor's mirror difference at σ 2 (``<prefix>_WT_mirror2``)
    and the distance (mm) to the largest component of ``WT > 0.5`` (``<prefix>_WT_mm``). The
    second stage reads them from the first stage's output (``prefix`` ``s1``) and from the
    network's (``cnn``). Reads ``brain_mask`` (1, X, Y, Z)."""

    def __init__(self, prob_key: str, prefix: str, spacing_mm: float, mask_key: str = "brain_mask") -> None:
        super().__init__([prob_key])
        self.prob_key, self.prefix, self.spacing_mm, self.mask_key = prob_key, prefix, float(spacing_mm), mask_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        probs = np.asarray(d[self.prob_key], np.float32)
        maps = _features(d)
        midline = midline_vox(_brain(d, self.mask_key))
        for i, region in enumerate(("WT", "TC", "ET")):
            maps[f"{self.prefix}_{region}"] = probs[i]
            for s in SCALES_VOX:
                smoothed = ndimage.gaussian_filter(probs[i], s, truncate=3.0)
                maps[f"{self.prefix}_{region}_g{s:g}"] = smoothed
                if region == "WT" and s == 2.0:
                    maps[f"{self.prefix}_WT_mirror2"] = smoothed - mirror(smoothed, midline)
        maps[f"{self.prefix}_WT_mm"] = _distance_mm(largest_component(probs[0] > 0.5), self.spacing_mm)
        return d


class BrainVoxelsd(MapTransform):
    """Stack ``data["features"]`` (named (X, Y, Z) maps) over the brain voxels of ``data[mask_key]``
    (1, X, Y, Z): ``data[out_key]`` float32 (N, F) in the maps' order, ``data["voxel_index"]`` int64
    (N,) (flat indices into (X, Y, Z), C order) and ``data["feature_names"]`` (F names). The maps
    are removed (a case's would be a hundred megabytes)."""

    def __init__(self, mask_key: str = "brain_mask", out_key: str = "voxels") -> None:
        super().__init__([mask_key])
        self.mask_key, self.out_key = mask_key, out_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        index = np.flatnonzero(_brain(d, self.mask_key))
        maps = d.pop("features", {})
        matrix = np.empty((index.size, len(maps)), np.float32)
        for j, volume in enumerate(maps.values()):
            matrix[:, j] = np.ravel(volume)[index]
        d[self.out_key], d["voxel_index"], d["feature_names"] = matrix, index, list(maps)
        return d
