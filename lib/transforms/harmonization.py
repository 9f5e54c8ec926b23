"""Intensity harmonisation: N4 bias correction, Nyúl histogram standardisation, z-score.

All transforms work on ``data[image_key]`` float32 (C, X, Y, Z), channels in
:data:`lib.brats.SEQUENCES` order, and ``data[mask_key]`` uint8 (1, X, Y, Z); they only
change voxels inside the mask and set the background to 0. Pipeline order:
N4 (optional) -> Nyúl (optional, needs landmarks learned on training cases) -> z-score.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Hashable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from monai.transforms import MapTransform

from lib.atomic import write_json
from lib.brats import SEQUENCES
from lib.errors import InputError

#: Percentiles used as Nyúl landmarks: 1, 10, 20, ..., 90, 99.
DEFAULT_PERCENTILES: tuple[float, ...] = (1.0, *[float(p) for p in range(10, 100, 10)], 99.0)
#: Standard scale onto which the first and last landmarks are mapped.
DEFAULT_STANDARD_RANGE: tuple[float, float] = (0.0, 100.0)
#: Format tag of a landmarks JSON file (checkpoints carry their landmarks inside).
_FORMAT = "braintumorlabel-nyul-landmarks"


# --------------------------------------------------------------------------- N4
#: Grid on which N4 estimates the bias field, mm. The field is smooth (a few control points
#: across the head), so 8 mm loses little against 4 mm (relative RMS difference of the log
#: field 0.15 on the real cases) and is 3x faster; what costs is N4's iterations, not voxels.
N4_FIELD_SPACING_MM = 8.0
#: N4 iterations per fitting level (three levels: 4, 8 and 16 control-point spans).
N4_ITERATIONS: tuple[int, ...] = (50, 50, 30)


def n4_bias_correct(image: np.ndarray, mask: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0),
                    shrink: int = 4, iterations: Sequence[int] = N4_ITERATIONS,
                    threads: int | None = None) -> np.ndarray:
    """N4 bias-field correction of one (X, Y, Z) volume inside ``mask`` (X, Y, Z).

    The field is estimated with SimpleITK's N4 on the image shrunk by ``shrink`` voxels per
    axis, then the log field is evaluated at full resolution and divided out. ``threads``: ITK
    threads of the filter (None: ITK's default). Returns float32 (X, Y, Z), 0 outside the
    mask. Voxels <= 0 inside the mask are excluded from the estimate.
    """
    arr = np.asarray(image, np.float32)
    m = np.asarray(mask).astype(bool) & (arr > 0)
    if m.sum() < 100:
        return np.where(mask, arr, 0).astype(np.float32)
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)))
    img.SetSpacing([float(s) for s in spacing])
    msk = sitk.GetImageFromArray(np.ascontiguousarray(m.transpose(2, 1, 0).astype(np.uint8)))
    msk.CopyInformation(img)
    small = sitk.Shrink(img, [shrink] * 3)
    small_m = sitk.Shrink(msk, [shrink] * 3)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([int(i) for i in iterations])
    if threads is not None:
        n4.SetNumberOfThreads(int(threads))
    n4.Execute(small, small_m)
    log_field = sitk.GetArrayFromImage(n4.GetLogBiasFieldAsImage(img)).transpose(2, 1, 0)
    out = arr / np.exp(log_field)
    return np.where(mask, out, 0).astype(np.float32)


def n4_bias_correct_channels(image: np.ndarray, mask: np.ndarray, spacing_mm: Sequence[float],
                             field_spacing_mm: float = N4_FIELD_SPACING_MM) -> np.ndarray:
    """N4 bias correction of every channel of ``image`` (C, X, Y, Z) inside ``mask`` (X, Y, Z) on
    a grid of ``spacing_mm``, each channel with its own field, estimated on a grid of about
    ``field_spacing_mm``. Channels run in parallel threads, one ITK thread each (2.4 s for a
    2 mm case on 2 cores, against 2.8 s one channel after the other). Returns float32 (C, X, Y, Z)."""
    img = np.asarray(image, np.float32)
    brain = np.asarray(mask).astype(bool)
    spacing = tuple(float(s) for s in spacing_mm)
    shrink = max(1, round(field_spacing_mm / max(spacing)))
    with ThreadPoolExecutor(max(1, min(len(img), os.cpu_count() or 1))) as pool:
        channels = list(pool.map(lambda c: n4_bias_correct(c, brain, spacing, shrink, threads=1), img))
    return np.stack(channels, 0)


class N4BiasCorrectiond(MapTransform):
    """N4 bias correction of every channel of ``data[image_key]`` (C, X, Y, Z) inside
    ``data[mask_key]`` (1, X, Y, Z), each channel with its own field (the fields of a case's
    four sequences are not the same: their correlation on the real cases ranges from -0.5 to
    0.9); see :func:`n4_bias_correct_channels`. The working grid's spacing comes from
    ``data["geometry"]`` (1 mm when there is none)."""

    def __init__(self, image_key: str = "image", mask_key: str = "brain_mask",
                 field_spacing_mm: float = N4_FIELD_SPACING_MM) -> None:
        super().__init__([image_key])
        self.image_key, self.mask_key, self.field_spacing_mm = image_key, mask_key, field_spacing_mm

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        mask = np.asarray(d[self.mask_key])[0]
        spacing = d["geometry"].ras_grid.spacing if getattr(d.get("geometry"), "ras_grid", None) else (1.0,) * 3
        d[self.image_key] = n4_bias_correct_channels(d[self.image_key], mask, spacing, self.field_spacing_mm)
        return d


# --------------------------------------------------------------------------- z-score
def zscore(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(x - mean) / std over the mask voxels of one (X, Y, Z) volume; 0 outside the mask.
    A constant volume (std 0) gives 0 inside as well."""
    arr = np.asarray(image, np.float32)
    m = np.asarray(mask).astype(bool)
    out = np.zeros_like(arr, dtype=np.float32)
    if not m.any():
        return out
    v = arr[m].astype(np.float64)
    mu, sd = float(v.mean()), float(v.std())
    out[m] = ((v - mu) / sd).astype(np.float32) if sd > 0 else 0.0
    return out


class ZScoreNormalized(MapTransform):
    """Per-channel z-score of ``data[image_key]`` (C, X, Y, Z) over ``data[mask_key]``
    (1, X, Y, Z) voxels; background set to 0. Output float32, in place."""

    def __init__(self, image_key: str = "image", mask_key: str = "brain_mask") -> None:
        super().__init__([image_key])
        self.image_key, self.mask_key = image_key, mask_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        mask = np.asarray(d[self.mask_key])[0]
        d[self.image_key] = np.stack([zscore(c, mask) for c in np.asarray(d[self.image_key])], 0)
        return d


# --------------------------------------------------------------------------- Nyúl
def image_landmarks(values: np.ndarray, percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> np.ndarray:
    """Intensity percentiles (the image's landmarks) of a 1D sample (foreground voxels)."""
    return np.percentile(np.asarray(values, np.float64), list(percentiles))


@dataclass
class NyulLandmarks:
    """Nyúl standard landmarks per sequence.

    ``percentiles``: the landmark percentiles (increasing, e.g. 1, 10..90, 99);
    ``standard``: sequence -> standard-scale value of each landmark (increasing);
    ``standard_range``: where the first and last landmark land (e.g. 0, 100);
    ``n_cases``: how many training cases were used.
    """

    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES
    standard: dict[str, list[float]] = field(default_factory=dict)
    standard_range: tuple[float, float] = DEFAULT_STANDARD_RANGE
    n_cases: int = 0

    # ---- learning
    @classmethod
    def fit(cls, samples: Iterable[Mapping[str, np.ndarray]], percentiles: Sequence[float] = DEFAULT_PERCENTILES,
            standard_range: tuple[float, float] = DEFAULT_STANDARD_RANGE) -> NyulLandmarks:
        """Learn landmarks from training samples: each sample maps a sequence name to the 1D
        array of its brain-voxel intensities. Each case's landmarks are mapped linearly so
        that the first/last land on ``standard_range``; the standard landmarks are the mean."""
        s1, s2 = standard_range
        acc: dict[str, list[np.ndarray]] = {}
        n = 0
        for sample in samples:
            n += 1
            for seq, values in sample.items():
                lm = image_landmarks(values, percentiles)
                if lm[-1] <= lm[0]:
                    raise InputError(f"sequence '{seq}' has a constant brain intensity; cannot learn landmarks")
                acc.setdefault(seq, []).append(s1 + (lm - lm[0]) / (lm[-1] - lm[0]) * (s2 - s1))
        if n == 0:
            raise InputError("no training cases to learn Nyúl landmarks from")
        std = {seq: np.mean(v, axis=0).tolist() for seq, v in acc.items()}
        return cls(tuple(float(p) for p in percentiles), std, (float(s1), float(s2)), n)

    @classmethod
    def fit_from_data(cls, dicts: Iterable[Mapping[Hashable, Any]], image_key: str = "image",
                      mask_key: str = "brain_mask", sequences: Sequence[str] = SEQUENCES,
                      **kwargs: Any) -> NyulLandmarks:
        """:meth:`fit` from preprocessed data dicts (``image`` (C, X, Y, Z), ``brain_mask`` (1, X, Y, Z))."""
        def gen() -> Iterable[dict[str, np.ndarray]]:
            for d in dicts:
                m = np.asarray(d[mask_key])[0].astype(bool)
                img = np.asarray(d[image_key])
                yield {s: img[i][m] for i, s in enumerate(sequences)}
        return cls.fit(gen(), **kwargs)

    # ---- applying
    def apply(self, volume: np.ndarray, mask: np.ndarray, sequence: str) -> np.ndarray:
        """Map one (X, Y, Z) volume onto the standard scale of ``sequence``: piecewise-linear
        between its own landmarks (computed inside ``mask``) and the standard ones, linear
        extrapolation beyond the end segments; 0 outside the mask. float32 out."""
        if sequence not in self.standard:
            raise InputError(f"no Nyúl landmarks for sequence '{sequence}'")
        arr = np.asarray(volume, np.float32)
        m = np.asarray(mask).astype(bool)
        out = np.zeros_like(arr, dtype=np.float32)
        if not m.any():
            return out
        v = arr[m].astype(np.float64)
        src = image_landmarks(v, self.percentiles)
        dst = np.asarray(self.standard[sequence], np.float64)
        # guard against repeated landmarks (plateaus): make strictly increasing
        src = np.maximum.accumulate(src + np.arange(len(src)) * 1e-9 * max(1.0, abs(src[-1] - src[0])))
        mapped = np.interp(v, src, dst)
        lo, hi = v < src[0], v > src[-1]
        mapped[lo] = dst[0] + (v[lo] - src[0]) * (dst[1] - dst[0]) / (src[1] - src[0])
        mapped[hi] = dst[-1] + (v[hi] - src[-1]) * (dst[-1] - dst[-2]) / (src[-1] - src[-2])
        out[m] = mapped.astype(np.float32)
        return out

    # ---- persistence
    def to_dict(self) -> dict[str, Any]:
        return {"format": _FORMAT, "version": 1, "percentiles": list(self.percentiles),
                "standard_range": list(self.standard_range), "n_cases": self.n_cases,
                "standard": {k: list(v) for k, v in self.standard.items()}}

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], path: str | Path | None = None) -> NyulLandmarks:
        try:
            if obj.get("format") != _FORMAT:
                raise ValueError("not a landmarks file")
            pct = tuple(float(p) for p in obj["percentiles"])
            std = {str(k): [float(x) for x in v] for k, v in obj["standard"].items()}
            rng = tuple(float(x) for x in obj["standard_range"])
            for k, v in std.items():
                if len(v) != len(pct) or not all(math.isfinite(x) for x in v) or np.any(np.diff(v) < 0):
                    raise ValueError(f"bad landmarks for '{k}'")
            return cls(pct, std, (rng[0], rng[1]), int(obj.get("n_cases", 0)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"invalid Nyúl landmarks file ({exc})", path=path) from None

    def save(self, path: str | Path) -> Path:
        """Write the landmarks as JSON atomically (temp file in the same folder, then
        ``os.replace``): readers see the old file or the new one, never a partial one.
        Non-finite values raise ``ValueError`` and leave any existing file untouched."""
        write_json(path, self.to_dict(), indent=2, allow_nan=False)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> NyulLandmarks:
        """Read landmarks written by :meth:`save`; :class:`InputError` if missing or invalid."""
        p = Path(path)
        try:
            obj = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read Nyúl landmarks ({exc})", path=p) from None
        return cls.from_dict(obj, p)



class NyulStandardized(MapTransform):
    """Apply Nyúl standardisation to each channel of ``data[image_key]`` (C, X, Y, Z) inside
    ``data[mask_key]`` (1, X, Y, Z), channel i using the landmarks of ``sequences[i]``.
    ``landmarks`` is a :class:`NyulLandmarks` or the path of a saved JSON. In place."""

    def __init__(self, landmarks: NyulLandmarks | str | Path, image_key: str = "image",
                 mask_key: str = "brain_mask", sequences: Sequence[str] = SEQUENCES) -> None:
        super().__init__([image_key])
        self.landmarks = landmarks if isinstance(landmarks, NyulLandmarks) else NyulLandmarks.load(landmarks)
        missing = [s for s in sequences if s not in self.landmarks.standard]
        if missing:
            raise InputError(f"Nyúl landmarks lack sequence(s) {missing}",
                             path=None if isinstance(landmarks, NyulLandmarks) else landmarks)
        self.image_key, self.mask_key, self.sequences = image_key, mask_key, tuple(sequences)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        mask = np.asarray(d[self.mask_key])[0]
        img = np.asarray(d[self.image_key])
        d[self.image_key] = np.stack([self.landmarks.apply(img[i], mask, s) for i, s in enumerate(self.sequences)], 0)
        return d
