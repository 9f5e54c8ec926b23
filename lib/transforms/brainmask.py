"""Brain mask and crop to the brain bounding box.

Two cases:

* Skull-stripped input (BraTS): detected by a large share of *exactly* zero voxels in the
  reference channel (``zero_fraction >= 0.25``). The mask is the voxels where any
  sequence is non-zero, holes filled.
* Not skull-stripped: fallback = Otsu threshold on the reference channel, largest
  connected component, morphological closing, hole filling. This is a **head** mask
  (scalp and skull included), not a brain mask: no skull-stripping network is available
  offline. Downstream normalisation then uses head statistics.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from monai.transforms import MapTransform
from scipy import ndimage

from lib.brats import REFERENCE_SEQUENCE, SEQUENCES

from ._common import CaseGeometry

#: Share of exactly-zero voxels above which an image is taken as skull-stripped.
SKULL_STRIPPED_ZERO_FRACTION = 0.25


def is_skull_stripped(reference: np.ndarray, threshold: float = SKULL_STRIPPED_ZERO_FRACTION) -> bool:
    """True when at least ``threshold`` of the voxels of ``reference`` (any shape) are exactly 0."""
    return float(np.mean(reference == 0)) >= threshold


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a 1D sample (maximises the between-class variance of a histogram)."""
    v = np.asarray(values, np.float64).ravel()
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return lo
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist).astype(np.float64)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


def _largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def head_mask(reference: np.ndarray) -> np.ndarray:
    """Fallback mask for non-skull-stripped data (a HEAD mask): Otsu on a 3D array, largest
    connected component, closing (2 iterations), hole filling. Returns bool, same shape."""
    ref = np.asarray(reference, np.float32)
    # subsample for the histogram: speed only
    sample = ref[::2, ::2, ::2]
    t = otsu_threshold(sample[np.isfinite(sample)])
    m = _largest_component(ref > t)
    m = ndimage.binary_closing(m, iterations=2)
    return ndimage.binary_fill_holes(m)


def brain_mask(image: np.ndarray, reference_channel: int = SEQUENCES.index(REFERENCE_SEQUENCE),
               method: Literal["auto", "nonzero", "otsu"] = "auto") -> tuple[np.ndarray, bool]:
    """Mask of a (C, X, Y, Z) image. Returns (bool mask (X, Y, Z), skull_stripped flag).
    ``auto`` picks ``nonzero`` (any channel non-zero, holes filled) for skull-stripped
    data and ``otsu`` (:func:`head_mask` on the reference channel) otherwise."""
    ref = image[reference_channel]
    stripped = is_skull_stripped(ref) if method == "auto" else method == "nonzero"
    if stripped:
        m = np.any(image != 0, axis=0)
        # fill the holes inside the brain (dark ventricles, necrosis, voxels at 0 in every sequence)
        m = ndimage.binary_fill_holes(m)
    else:
        m = head_mask(ref)
    return m, stripped


class BrainMaskd(MapTransform):
    """Compute the brain mask of ``data[image_key]`` (float (C, X, Y, Z)).

    Writes ``data[mask_key]`` uint8 (1, X, Y, Z) (1 = brain, or head for the fallback) and
    ``data["skull_stripped"]`` (bool, which method was used; see module docstring).
    """

    def __init__(self, image_key: str = "image", mask_key: str = "brain_mask",
                 method: Literal["auto", "nonzero", "otsu"] = "auto") -> None:
        super().__init__([image_key])
        self.image_key, self.mask_key, self.method = image_key, mask_key, method

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        m, stripped = brain_mask(np.asarray(d[self.image_key]), method=self.method)
        d[self.mask_key] = m.astype(np.uint8)[None]
        d["skull_stripped"] = stripped
        return d


def bounding_box(mask: np.ndarray, margin: int | Sequence[int] = 0) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Voxel box ``[start, stop)`` of the non-zero region of a (X, Y, Z) mask, grown by
    ``margin`` voxels per side and clipped to the array. Empty mask -> the whole array."""
    m = np.asarray(mask).astype(bool)
    marg = np.broadcast_to(np.asarray(margin, int), (m.ndim,))
    if not m.any():
        return (0,) * m.ndim, tuple(m.shape)
    start, stop = [], []
    for ax in range(m.ndim):
        proj = np.any(m, axis=tuple(a for a in range(m.ndim) if a != ax))
        idx = np.flatnonzero(proj)
        start.append(max(0, int(idx[0]) - int(marg[ax])))
        stop.append(min(m.shape[ax], int(idx[-1]) + 1 + int(marg[ax])))
    return tuple(start), tuple(stop)


class CropToMaskd(MapTransform):
    """Crop the spatial axes of every array under ``keys`` (shape (C, X, Y, Z)) to the bounding
    box of ``data[mask_key]`` plus ``margin`` voxels per side.

    Writes the cropped arrays in place and records the box in ``data["geometry"]``
    (``crop_start``/``crop_stop`` relative to the RAS grid) so the inverse can un-crop.
    """

    def __init__(self, keys: Sequence[str] = ("image", "label", "brain_mask"), mask_key: str = "brain_mask",
                 margin: int = 8, allow_missing_keys: bool = True) -> None:
        super().__init__(keys, allow_missing_keys)
        self.mask_key, self.margin = mask_key, int(margin)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        mask = np.asarray(d[self.mask_key])[0]
        start, stop = bounding_box(mask, self.margin)
        sl = (slice(None),) + tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
        for key in self.key_iterator(d):
            if d[key] is not None:
                d[key] = np.ascontiguousarray(np.asarray(d[key])[sl])
        g = d.get("geometry")
        if isinstance(g, CaseGeometry):
            prev = g.crop_start or (0, 0, 0)
            g.crop_start = tuple(int(p + s) for p, s in zip(prev, start, strict=True))
            g.crop_stop = tuple(int(p + s) for p, s in zip(prev, stop, strict=True))
        return d
