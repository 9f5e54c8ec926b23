"""Tissue-level augmentation: break the shortcut "bright on T1c means tumor".

Measured on the real cases (README, "Where the false positives come from"): most false-positive
tumor lies far from any lesion, in tissue that is bright on T1c (and T1) with normal T2, and
generated edema used to be brighter on T1c than real edema. Two dictionary transforms for
training patches that are already z-scored over the brain (values in brain standard deviations):

- :class:`RandTissueShiftd` moves one sequence's intensity inside chosen labels by a random
  offset, so the brightness of edema or core on that sequence stops identifying it;
- :class:`RandEnhancingDecoysd` adds smooth blobs that are bright on T1c (and somewhat on T1
  and FLAIR, not on T2) in normal brain and leaves the label at background, so such tissue is
  seen as not tumor;
- :class:`RandNonEnhancingCored` takes the contrast uptake out of the enhancing tumor and
  labels it non-enhancing core, so the shape of a core never implies enhancement (off by
  default: ``TrainConfig.non_enhancing_prob``). Measured on the real cases
  (bench/results/real_cv3.md): 5 of the 8 have no enhancing tumor, and the cv3 models called
  30 to 120 mL of it in each; with this transform at 0.25 (and N4, in the same run: cv4) that
  fell to 6-76 mL, still far from none, while whole tumor and core got worse.

- :class:`RandSignalDropoutd` blacks out one sequence over a slab of the patch, as a failed coil
  element or a partial acquisition does (BraTS2021-01482's T1: half of its false tumor lies
  there; ``lib/transforms/quality.py``), and keeps the label, so tissue that is black on one
  sequence is judged by the others (off by default: ``TrainConfig.signal_dropout_prob``).

All expect ``image`` (C, X, Y, Z) with channels in ``lib.brats.SEQUENCES`` order and ``label``
(1, X, Y, Z) with BraTS values (0 background, 1 NCR, 2 ED, 3 ET); numpy arrays or tensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import MapTransform, RandomizableTransform
from scipy import ndimage

from lib.brats import ED, ET, NCR, SEQUENCES

T1C = SEQUENCES.index("t1c")

#: Per-sequence range (z units) of a decoy's peak: T1c clearly bright, T1 and FLAIR a little,
#: T2 untouched; the signature of the false positives measured on real cases.
DECOY_PEAK_Z: dict[str, tuple[float, float]] = {
    "t1n": (0.0, 0.6), "t1c": (0.6, 1.6), "t2w": (0.0, 0.0), "t2f": (0.0, 0.8)}


def _as_numpy(array: Any) -> np.ndarray:
    return array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)


def _like(result: np.ndarray, original: Any) -> Any:
    """``result`` in the container type of ``original`` (a MetaTensor keeps its metadata)."""
    if isinstance(original, torch.Tensor):
        out = original.clone()
        out[...] = torch.as_tensor(result, dtype=original.dtype)
        return out
    return result.astype(np.asarray(original).dtype, copy=False)


class RandTissueShiftd(RandomizableTransform, MapTransform):
    """With probability ``prob``, add to channel ``channel`` of ``image`` an offset drawn from
    ``offsets_z`` (z units) inside each of ``labels`` separately. The label mask is blurred
    by ``sigma_vox`` voxels first, so the shift fades in across the border instead of drawing
    a step at the label's edge (which would give the label away)."""

    def __init__(self, image_key: str = "image", label_key: str = "label", channel: int = T1C,
                 labels: Sequence[int] = (1, 2), offsets_z: tuple[float, float] = (-0.6, 0.3),
                 prob: float = 0.3, sigma_vox: float = 1.0) -> None:
        MapTransform.__init__(self, (image_key, label_key))
        RandomizableTransform.__init__(self, prob)
        if offsets_z[0] > offsets_z[1]:
            raise ValueError(f"offsets_z must be (low, high), got {offsets_z}")
        self.image_key, self.label_key = image_key, label_key
        self.channel, self.labels, self.offsets_z, self.sigma_vox = channel, tuple(labels), offsets_z, sigma_vox
        self._offsets: list[float] = []

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self._offsets = [float(self.R.uniform(*self.offsets_z)) for _ in self.labels]

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        d = dict(data)
        self.randomize()
        if not self._do_transform:
            return d
        image, label = _as_numpy(d[self.image_key]).copy(), _as_numpy(d[self.label_key])[0]
        for value, offset in zip(self.labels, self._offsets, strict=True):
            mask = label == value
            if mask.any():
                image[self.channel] += offset * ndimage.gaussian_filter(mask.astype(np.float32), self.sigma_vox)
        d[self.image_key] = _like(image, d[self.image_key])
        return d


class RandEnhancingDecoysd(RandomizableTransform, MapTransform):
    """With probability ``prob``, add 1 to ``max_decoys`` Gaussian blobs (standard deviation
    ``sigma_vox`` voxels per axis, drawn in that range) centred in normal brain: label 0 inside
    ``brain_key``. Each sequence's peak is drawn from :data:`DECOY_PEAK_Z` (z units); the blob
    is kept to normal brain, so tumor voxels are unchanged and the label stays as it was."""

    def __init__(self, image_key: str = "image", label_key: str = "label", brain_key: str = "brain_mask",
                 prob: float = 0.3, max_decoys: int = 3, sigma_vox: tuple[float, float] = (1.0, 4.0),
                 peak_z: Mapping[str, tuple[float, float]] = DECOY_PEAK_Z) -> None:
        MapTransform.__init__(self, (image_key, label_key, brain_key))
        RandomizableTransform.__init__(self, prob)
        if max_decoys < 1:
            raise ValueError(f"max_decoys must be at least 1, got {max_decoys}")
        self.image_key, self.label_key, self.brain_key = image_key, label_key, brain_key
        self.max_decoys, self.sigma_vox, self.peak_z = max_decoys, sigma_vox, dict(peak_z)

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        image = _as_numpy(d[self.image_key]).copy()
        normal = (_as_numpy(d[self.label_key])[0] == 0) & (_as_numpy(d[self.brain_key])[0] > 0)
        candidates = np.argwhere(normal)
        if len(candidates) == 0:
            return d
        grid = np.indices(normal.shape, dtype=np.float32)
        for _ in range(int(self.R.randint(1, self.max_decoys + 1))):
            centre = candidates[int(self.R.randint(len(candidates)))]
            sigma = self.R.uniform(*self.sigma_vox, size=3)
            r2 = sum(((grid[a] - centre[a]) / sigma[a]) ** 2 for a in range(3))
            blob = np.exp(-0.5 * r2) * normal
            for channel, seq in enumerate(SEQUENCES):
                image[channel] += float(self.R.uniform(*self.peak_z[seq])) * blob
        d[self.image_key] = _like(image, d[self.image_key])
        return d


class RandNonEnhancingCored(RandomizableTransform, MapTransform):
    """With probability ``prob``, make the enhancing tumor of a patch non-enhancing, as in a
    tumor that takes up no contrast: inside ET, T1c is pulled to the T1c level of the
    non-enhancing core (median over NCR, or over edema when the patch has under
    ``min_reference_voxels`` of NCR) plus an offset drawn from ``offset_z`` (z units), keeping
    ``texture`` of its own variation; the change fades out over a border blurred by
    ``sigma_vox`` voxels. ET becomes NCR in the label; the other sequences are unchanged."""

    def __init__(self, image_key: str = "image", label_key: str = "label", prob: float = 0.25,
                 offset_z: tuple[float, float] = (-0.3, 0.3), texture: float = 0.3, sigma_vox: float = 1.0,
                 min_reference_voxels: int = 20) -> None:
        MapTransform.__init__(self, (image_key, label_key))
        RandomizableTransform.__init__(self, prob)
        if offset_z[0] > offset_z[1]:
            raise ValueError(f"offset_z must be (low, high), got {offset_z}")
        if not 0.0 <= texture <= 1.0:
            raise ValueError(f"texture must be between 0 and 1, got {texture}")
        self.image_key, self.label_key = image_key, label_key
        self.offset_z, self.texture, self.sigma_vox = offset_z, texture, sigma_vox
        self.min_reference_voxels = min_reference_voxels
        self._offset = 0.0

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self._offset = float(self.R.uniform(*self.offset_z))

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        d = dict(data)
        self.randomize()
        if not self._do_transform:
            return d
        label = _as_numpy(d[self.label_key]).copy()
        enhancing = label[0] == ET
        if not enhancing.any():
            return d
        image = _as_numpy(d[self.image_key]).copy()
        t1c = image[T1C]
        reference = label[0] == NCR
        if reference.sum() < self.min_reference_voxels:
            reference = label[0] == ED
        level = float(np.median(t1c[reference])) if reference.any() else float(np.median(t1c[~enhancing]))
        target = level + self._offset + self.texture * (t1c - float(np.median(t1c[enhancing])))
        weight = np.maximum(ndimage.gaussian_filter(enhancing.astype(np.float32), self.sigma_vox), enhancing)
        image[T1C] = (1.0 - weight) * t1c + weight * target
        label[0][enhancing] = NCR
        d[self.image_key] = _like(image, d[self.image_key])
        d[self.label_key] = _like(label, d[self.label_key])
        return d


class RandSignalDropoutd(RandomizableTransform, MapTransform):
    """With probability ``prob``, black out one randomly chosen sequence over a slab of the
    patch: the voxels within ``thickness_vox`` (drawn in that range) of one randomly chosen face
    of the patch get that channel's lowest value inside ``brain_key`` in the patch (its "no
    signal" level once z-scored), everywhere else and every other channel unchanged. The label
    is kept: the tissue is still what it was, only one sequence does not show it."""

    def __init__(self, image_key: str = "image", brain_key: str = "brain_mask", prob: float = 0.2,
                 thickness_vox: tuple[int, int] = (4, 16)) -> None:
        MapTransform.__init__(self, (image_key, brain_key))
        RandomizableTransform.__init__(self, prob)
        if not 1 <= thickness_vox[0] <= thickness_vox[1]:
            raise ValueError(f"thickness_vox must be (low, high) with 1 <= low <= high, got {thickness_vox}")
        self.image_key, self.brain_key, self.thickness_vox = image_key, brain_key, thickness_vox

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        image = _as_numpy(d[self.image_key]).copy()
        brain = _as_numpy(d[self.brain_key])[0] > 0
        channel = int(self.R.randint(image.shape[0]))
        axis, from_start = int(self.R.randint(3)), bool(self.R.randint(2))
        thickness = min(int(self.R.randint(self.thickness_vox[0], self.thickness_vox[1] + 1)), image.shape[axis + 1])
        slab = [slice(None)] * 3
        slab[axis] = slice(0, thickness) if from_start else slice(image.shape[axis + 1] - thickness, None)
        black = float(image[channel][brain].min()) if brain.any() else float(image[channel].min())
        image[channel][tuple(slab)] = black
        d[self.image_key] = _like(image, d[self.image_key])
        return d
