"""The voxel classifier: one or two stages of gradient-boosted trees (LightGBM) over the features of
:mod:`lib.classifier.features`, the thresholds it was selected with, and how it is stored.

Each stage predicts, for every brain voxel of the working grid, the probabilities of the four
classes background, NCR, ED, ET; the regions follow as WT = 1 - p(background), TC = p(NCR) +
p(ET), ET = p(ET). A second stage sees the first stage's regions in context
(:class:`lib.classifier.features.RegionContextd`), and in the *fusion* variant also the network's
regions and the FLAIR floor (:class:`lib.classifier.features.FlairFloord`). The labels are the
regions thresholded (:class:`Thresholds`, chosen on out-of-fold predictions of the training cases,
:mod:`lib.classifier.fit`), whole-tumor components much smaller than the largest dropped, and the
served ET rule (:func:`lib.postprocessing.relabel_unenhancing`).

A classifier is stored inside the model's checkpoint (``lib.model.checkpoint``) as the plain dict
of :meth:`VoxelClassifier.to_dict`: the trees as LightGBM's text model, zlib-compressed.
"""

from __future__ import annotations

import zlib
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
from monai.transforms import Compose
from scipy import ndimage

from lib.brats import SEQUENCES
from lib.postprocessing import keep_large_components, regions_to_labels, relabel_unenhancing, remove_small_lesions

from .features import (
    FEATURES_VERSION,
    BrainVoxelsd,
    FlairFloord,
    IntensityFeaturesd,
    MirrorAsymmetryd,
    PositionFeaturesd,
    RegionContextd,
    SequenceDifferencesd,
    SmoothedSequencesd,
)

ONE_STAGE, TWO_STAGE, FUSION = "one_stage", "two_stage", "fusion"
VARIANTS: tuple[str, ...] = (ONE_STAGE, TWO_STAGE, FUSION)
#: Trees per class after which a voxel whose class margin is already large stops (LightGBM's
#: prediction early stopping): most brain voxels are plainly background, so serving is faster
#: while a tumor voxel's probabilities are those of all the trees.
EARLY_STOP_FREQ, EARLY_STOP_MARGIN = 10, 8.0
#: Coarse-to-fine prediction (:meth:`Stage.predict_volume`): every brain voxel of the lattice of
#: every second voxel is predicted; every voxel within one coarse step of a lattice voxel whose WT
#: probability reaches this is predicted too; the rest keep the nearest lattice voxel's output.
FINE_MIN_WT = 0.02


def base_features(spacing_mm: float) -> Compose:
    """The first stage's features of a preprocessed case (``image`` (4, X, Y, Z), ``brain_mask``
    (1, X, Y, Z) on a ``spacing_mm`` grid): intensities, mirror differences, sequence differences,
    position, stacked over the brain voxels (``voxels`` (N, F), ``voxel_index``, ``feature_names``)."""
    return Compose([SmoothedSequencesd(), IntensityFeaturesd(), MirrorAsymmetryd(), SequenceDifferencesd(),
                    PositionFeaturesd(spacing_mm), _Drop("smoothed"), BrainVoxelsd()], map_items=False)


def context_features(spacing_mm: float, fusion: bool) -> Compose:
    """The second stage's own features: the first stage's regions in context (``s1_regions``
    (3, X, Y, Z)), with ``fusion`` also the network's (``cnn_regions`` (3, X, Y, Z)) and the FLAIR
    floor (from ``image``); over the brain voxels of ``brain_mask``, as :func:`base_features`."""
    transforms: list[Any] = [RegionContextd("s1_regions", "s1", spacing_mm)]
    if fusion:
        transforms += [RegionContextd("cnn_regions", "cnn", spacing_mm), FlairFloord(spacing_mm)]
    return Compose([*transforms, BrainVoxelsd()], map_items=False)


class _Drop:
    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        return {k: v for k, v in data.items() if k != self.key}


def class_to_regions(probabilities: np.ndarray) -> np.ndarray:
    """(N, 4) class probabilities (background, NCR, ED, ET) -> (3, N) regions WT, TC, ET."""
    p = np.asarray(probabilities, np.float32)
    return np.stack([1.0 - p[:, 0], p[:, 1] + p[:, 3], p[:, 3]])


def scatter(values: np.ndarray, index: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """(C, N) values at flat voxel ``index`` -> float32 (C, *shape), 0 elsewhere."""
    out = np.zeros((values.shape[0], int(np.prod(shape))), np.float32)
    out[:, index] = values
    return out.reshape((values.shape[0], *shape))


@dataclass(frozen=True)
class Thresholds:
    """How region probabilities become labels: WT, TC, ET probability thresholds, and the
    smallest whole-tumor component kept as a fraction of the largest (0: all of at least 0.1 mL)."""

    wt: float = 0.5
    tc: float = 0.5
    et: float = 0.5
    min_component_fraction: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def labels_from_regions(regions: np.ndarray, thresholds: Thresholds, image: np.ndarray, brain_mask: np.ndarray,
                        spacing_mm: float) -> np.ndarray:
    """The classifier's postprocessing, (3, X, Y, Z) region probabilities -> uint8 labels (X, Y, Z):
    thresholds, nested labels, components under ``min_component_fraction`` of the largest dropped,
    small lesions removed, ET that is not bright on T1c relabelled NCR (the served ET rule).
    ``image`` (4, X, Y, Z) and ``brain_mask`` (1, X, Y, Z) as the preprocessing gives them."""
    r = np.asarray(regions)
    binary = np.stack([r[0] > thresholds.wt, r[1] > thresholds.tc, r[2] > thresholds.et]).astype(np.float32)
    binary[1:] *= binary[0]  # core and enhancement only inside the whole tumor
    labels = keep_large_components(regions_to_labels(binary), thresholds.min_component_fraction)
    labels = remove_small_lesions(labels, (spacing_mm,) * 3)
    return relabel_unenhancing(labels, np.asarray(image)[SEQUENCES.index("t1c")], np.asarray(brain_mask)[0])


@dataclass
class Stage:
    """One LightGBM model over the named features (in this order)."""

    model_text: str
    feature_names: list[str]
    _booster: lgb.Booster | None = field(default=None, repr=False, compare=False)

    @property
    def booster(self) -> lgb.Booster:
        if self._booster is None:
            self._booster = lgb.Booster(model_str=self.model_text)
        return self._booster

    def predict(self, matrix: np.ndarray, num_threads: int = 0) -> np.ndarray:
        """(N, F) features -> (N, 4) class probabilities."""
        if matrix.shape[0] == 0:
            return np.zeros((0, 4), np.float32)
        return np.asarray(self.booster.predict(matrix, num_threads=num_threads, pred_early_stop=True,
                                               pred_early_stop_freq=EARLY_STOP_FREQ,
                                               pred_early_stop_margin=EARLY_STOP_MARGIN), np.float32)

    def predict_volume(self, matrix: np.ndarray, voxel_index: np.ndarray, shape: Sequence[int],
                       num_threads: int = 0, fine: bool = True) -> np.ndarray:
        """Region probabilities float32 (3, *shape) of the brain voxels at flat ``voxel_index``
        (rows of ``matrix`` (N, F)), predicted coarse to fine (:data:`FINE_MIN_WT`): about a
        quarter of the voxels are predicted, and all of those near any tumor. ``fine`` False: the
        lattice only (an eighth; the first stage of two, whose output the second sees smoothed).
        0 outside the brain."""
        coords = np.unravel_index(voxel_index, tuple(shape))
        lattice = (coords[0] % 2 == 0) & (coords[1] % 2 == 0) & (coords[2] % 2 == 0)
        coarse = np.zeros((4, *(-(-n // 2) for n in shape)), np.float32)
        coarse[0] = 1.0
        on_lattice: tuple[Any, ...] = (slice(None), *(c[lattice] // 2 for c in coords))
        coarse[on_lattice] = self.predict(matrix[lattice], num_threads).T
        near = ndimage.maximum_filter(1.0 - coarse[0], size=3) >= FINE_MIN_WT
        nearest = tuple(c // 2 for c in coords)
        neighbour: tuple[Any, ...] = (slice(None), *nearest)
        probabilities = coarse[neighbour].T  # (N, 4): each voxel's lattice neighbour
        if fine:
            refine = near[nearest] & ~lattice
            probabilities[refine] = self.predict(matrix[refine], num_threads)
        return scatter(class_to_regions(probabilities), voxel_index, shape)

    def to_dict(self) -> dict[str, Any]:
        return {"model_zlib": zlib.compress(self.model_text.encode("utf-8"), 6), "feature_names": self.feature_names}

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Stage:
        return cls(zlib.decompress(obj["model_zlib"]).decode("utf-8"), [str(n) for n in obj["feature_names"]])


@dataclass
class VoxelClassifier:
    """A trained classifier: its ``variant`` (one of :data:`VARIANTS`), one or two stages, the
    thresholds, the features' version and working resolution, and its training record."""

    variant: str
    stages: list[Stage]
    thresholds: Thresholds
    spacing_mm: float
    features_version: int = FEATURES_VERSION
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def uses_network(self) -> bool:
        """Whether the second stage reads the network's region probabilities."""
        return self.variant == FUSION

    def region_probabilities(self, data: Mapping[Hashable, Any], cnn_regions: np.ndarray | None = None,
                             num_threads: int = 0) -> np.ndarray:
        """Region probabilities float32 (3, X, Y, Z) (WT, TC, ET) of a preprocessed case (``image``
        (4, X, Y, Z), ``brain_mask`` (1, X, Y, Z)); 0 outside the brain. ``cnn_regions`` (3, X, Y, Z):
        the network's, needed by the fusion variant."""
        if self.features_version != FEATURES_VERSION:
            raise ValueError(f"the classifier was trained on features version {self.features_version}, "
                             f"this code computes version {FEATURES_VERSION}")
        base = base_features(self.spacing_mm)({"image": data["image"], "brain_mask": data["brain_mask"]})
        return self.regions_from_features(base, data, cnn_regions, num_threads)

    def regions_from_features(self, base: Mapping[Hashable, Any], data: Mapping[Hashable, Any],
                              cnn_regions: np.ndarray | None, num_threads: int = 0) -> np.ndarray:
        """:meth:`region_probabilities` from the output of :func:`base_features` (``base``)."""
        shape = np.asarray(data["brain_mask"]).shape[1:]
        _check_names(self.stages[0], base["feature_names"])
        regions = self.stages[0].predict_volume(base["voxels"], base["voxel_index"], shape, num_threads,
                                                fine=len(self.stages) == 1)
        if len(self.stages) == 1:
            return regions
        context = stage_two_context(data, regions, cnn_regions if self.uses_network else None, self.spacing_mm)
        matrix = np.concatenate([base["voxels"], context["voxels"]], axis=1)
        _check_names(self.stages[1], [*base["feature_names"], *context["feature_names"]])
        return self.stages[1].predict_volume(matrix, base["voxel_index"], shape, num_threads)

    def labels(self, regions: np.ndarray, image: np.ndarray, brain_mask: np.ndarray) -> np.ndarray:
        """uint8 labels (X, Y, Z) of :meth:`region_probabilities` (:func:`labels_from_regions`)."""
        return labels_from_regions(regions, self.thresholds, image, brain_mask, self.spacing_mm)

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "stages": [s.to_dict() for s in self.stages],
                "thresholds": self.thresholds.to_dict(), "spacing_mm": self.spacing_mm,
                "features_version": self.features_version, "training": self.training}

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> VoxelClassifier:
        if obj.get("variant") not in VARIANTS:
            raise ValueError(f"unknown classifier variant {obj.get('variant')!r}")
        return cls(variant=str(obj["variant"]), stages=[Stage.from_dict(s) for s in obj["stages"]],
                   thresholds=Thresholds(**obj["thresholds"]), spacing_mm=float(obj["spacing_mm"]),
                   features_version=int(obj["features_version"]), training=dict(obj.get("training") or {}))


def stage_two_context(data: Mapping[Hashable, Any], s1_regions: np.ndarray, cnn_regions: np.ndarray | None,
                      spacing_mm: float) -> dict[Hashable, Any]:
    """:func:`context_features` of a case (``image``, ``brain_mask``) given the first stage's
    regions (3, X, Y, Z) and, for the fusion, the network's."""
    d = {"image": data["image"], "brain_mask": data["brain_mask"], "s1_regions": s1_regions}
    if cnn_regions is not None:
        d["cnn_regions"] = cnn_regions
    return context_features(spacing_mm, cnn_regions is not None)(d)


def _check_names(stage: Stage, names: Sequence[str]) -> None:
    if list(names) != stage.feature_names:
        raise ValueError(f"the classifier was trained on other features ({len(stage.feature_names)} names) "
                         f"than these ({len(names)})")
