"""Training data: preprocess each labelled case once (cached on disk), then draw augmented
patches from memory.

A case dict is ``{"case_id": str, "image": <case folder | 4-channel file>, "label": path}``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandAffined,
    RandBiasFieldd,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    RandSimulateLowResolutiond,
    SpatialPadd,
)

from lib.atomic import atomic_path
from lib.brats import SEQUENCES
from lib.postprocessing import labels_to_regions
from lib.transforms import NyulLandmarks, build_preprocessing, zscore
from lib.transforms.io import find_case_files

from .augment import RandEnhancingDecoysd, RandNonEnhancingCored, RandSignalDropoutd, RandTissueShiftd

logger = logging.getLogger(__name__)

#: Bump when the preprocessing changes in a way that invalidates cached cases.
CACHE_VERSION = 1


@dataclass
class PreparedCase:
    """One preprocessed case in memory, on the RAS working grid: ``image`` float32 (4, X, Y, Z)
    un-normalised, ``label`` uint8 (1, X, Y, Z), ``brain_mask`` uint8 (1, X, Y, Z)."""

    case_id: str
    image: np.ndarray
    label: np.ndarray
    brain_mask: np.ndarray


def _cache_key(case: dict[str, Any], spacing_mm: float, n4: bool) -> str:
    files = find_case_files(case["image"], case.get("case_id"), label=case["label"])
    parts = [f"v{CACHE_VERSION}", f"{spacing_mm:g}mm", *(["n4"] if n4 else [])]
    sources = list(files.sequences.values()) if files.sequences else [files.multichannel]
    for path in [*sources, files.label]:
        stat = Path(path).stat()
        parts.append(f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def prepare_case(case: dict[str, Any], cache_dir: str | Path | None, spacing_mm: float,
                 n4: bool = False) -> PreparedCase:
    """Preprocess one labelled case onto a ``spacing_mm`` grid, bias-corrected if ``n4``,
    without intensity normalisation (landmarks are learned from these), reusing
    ``cache_dir/<id>-<key>.npz`` when the source files are unchanged."""
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"{case['case_id']}-{_cache_key(case, spacing_mm, n4)}.npz"
        if cache_file.exists():
            with np.load(cache_file) as z:
                return PreparedCase(case["case_id"], z["image"], z["label"], z["brain_mask"])
    out = build_preprocessing(with_label=True, normalize=False, spacing=spacing_mm, n4=n4)(
        {"image": case["image"], "label": case["label"], "case_id": case["case_id"]})
    prepared = PreparedCase(case["case_id"], np.asarray(out["image"], np.float32),
                            np.asarray(out["label"], np.uint8), np.asarray(out["brain_mask"], np.uint8))
    if cache_file is not None:
        with atomic_path(cache_file, suffix=".npz") as tmp:
            np.savez(tmp, image=prepared.image, label=prepared.label, brain_mask=prepared.brain_mask)
    return prepared


def normalize_case(case: PreparedCase, landmarks: NyulLandmarks | None) -> PreparedCase:
    """Apply what inference applies after the geometric steps: Nyúl (if given) then z-score."""
    mask = case.brain_mask[0].astype(bool)
    image = case.image.copy()
    if landmarks is not None:
        image = np.stack([landmarks.apply(image[i], mask, seq) for i, seq in enumerate(SEQUENCES)])
    image = np.stack([zscore(channel, mask) for channel in image])
    return PreparedCase(case.case_id, image, case.label, case.brain_mask)


def training_augmentation(roi_size: Sequence[int], samples_per_case: int, *,
                          non_enhancing_prob: float, signal_dropout_prob: float) -> Compose:
    """Patch sampling and augmentation for region training.

    Input dict: ``image`` (4, X, Y, Z) z-scored, ``label`` (1, X, Y, Z) uint8, ``brain_mask``.
    Output: a list of ``samples_per_case`` dicts with ``image`` (4, *roi) and ``label``
    (1, *roi). Two of three patches are centred on tumor; the rest on brain. Tissue
    augmentation (:mod:`lib.trainers.augment`) shifts the T1c of edema and core and adds
    T1c-bright decoys in normal brain, so T1c brightness alone never means tumor; with
    ``non_enhancing_prob`` > 0 it also turns enhancing tumor into non-enhancing core in that
    share of the patches, and with ``signal_dropout_prob`` > 0 it blacks out one sequence over a
    slab of that share of the patches. Intensity
    augmentation imitates other scanners (bias field, gamma, scale, shift, noise, blur,
    thick slices); spatial augmentation is flips and small rotations and scalings.
    """
    keys = ("image", "label", "brain_mask")
    return Compose([
        SpatialPadd(keys, roi_size),
        RandCropByPosNegLabeld(keys, label_key="label", spatial_size=roi_size, pos=2, neg=1,
                               num_samples=samples_per_case, image_key="brain_mask", image_threshold=0),
        RandNonEnhancingCored(prob=non_enhancing_prob),
        RandTissueShiftd(prob=0.3),
        RandEnhancingDecoysd(prob=0.3),
        RandSignalDropoutd(prob=signal_dropout_prob),
        RandAffined(("image", "label"), prob=0.25, rotate_range=(0.26, 0.26, 0.26), scale_range=(0.1, 0.1, 0.1),
                    mode=("bilinear", "nearest"), padding_mode="zeros"),
        RandFlipd(("image", "label"), prob=0.5, spatial_axis=0),
        RandFlipd(("image", "label"), prob=0.2, spatial_axis=1),
        RandFlipd(("image", "label"), prob=0.2, spatial_axis=2),
        RandBiasFieldd("image", prob=0.3, coeff_range=(0.0, 0.3)),
        RandAdjustContrastd("image", prob=0.3, gamma=(0.7, 1.5)),
        RandScaleIntensityd("image", factors=0.15, prob=0.8),
        RandShiftIntensityd("image", offsets=0.15, prob=0.8),
        RandGaussianNoised("image", prob=0.15, std=0.1),
        RandGaussianSmoothd("image", prob=0.15, sigma_x=(0.5, 1.2), sigma_y=(0.5, 1.2), sigma_z=(0.5, 1.2)),
        RandSimulateLowResolutiond("image", prob=0.15, zoom_range=(0.5, 1.0)),
    ])


class PatchDataset(torch.utils.data.IterableDataset):
    """Endless stream of augmented (image, regions) patches drawn from cases in memory.

    Yields ``image`` float32 (4, *roi) and ``regions`` float32 (3, *roi) (WT, TC, ET).
    Each worker and each distributed rank gets its own random stream from ``seed``.
    """

    def __init__(self, cases: Sequence[PreparedCase], roi_size: Sequence[int], seed: int, *,
                 samples_per_case: int, non_enhancing_prob: float, signal_dropout_prob: float) -> None:
        self.cases, self.seed = list(cases), seed
        self.augment = training_augmentation(roi_size, samples_per_case, non_enhancing_prob=non_enhancing_prob,
                                             signal_dropout_prob=signal_dropout_prob)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        seed = self.seed * 1000 + (info.id if info is not None else 0)
        rng = np.random.default_rng(seed)
        self.augment.set_random_state(seed=seed)
        while True:
            case = self.cases[int(rng.integers(len(self.cases)))]
            for sample in self.augment({"image": case.image, "label": case.label, "brain_mask": case.brain_mask}):
                label = np.asarray(sample["label"]).round().astype(np.uint8)
                yield {"image": torch.as_tensor(np.asarray(sample["image"]), dtype=torch.float32),
                       "regions": torch.as_tensor(labels_to_regions(label))}

