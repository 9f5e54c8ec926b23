"""Training the voxel classifier: voxel sampling, stacking with inner folds, threshold selection.

:func:`fit_classifiers` trains every requested variant (:data:`lib.classifier.model.VARIANTS`) on
a list of :class:`VoxelCase` in one go, so the variants share their first stage:

1. Each case's training voxels are sampled once (:func:`sample_voxels`): every tumor voxel (up to
   ``max_tumor_voxels``) and ``background_ratio`` times as many background voxels, 40 % of them
   within 8 mm of the tumor, 20 % near the brain's edge, the rest anywhere in the brain. Classes
   are weighted towards balance (square root of the inverse frequency), so the rare
   non-enhancing core is not drowned by edema.
2. The cases are dealt into ``inner_folds`` folds. The first stage is trained once per fold on the
   other folds and predicts that fold's cases: out-of-fold first-stage regions for every case.
   The second stage trains on those (a second stage fed with in-sample first-stage output would
   learn to trust it more than it deserves), again once per fold, giving out-of-fold second-stage
   regions; each stage is then trained once more on all cases (what is shipped).
3. The thresholds and the component rule (:class:`lib.classifier.model.Thresholds`) are chosen per
   variant on those out-of-fold regions of the training cases, never on a case the caller holds
   out: WT threshold and component rule for the mean WT Dice, then the TC threshold for TC Dice,
   then the ET threshold for the BraTS ET score (a case without ET scores 1 when under 1 mL is
   called).

The LightGBM settings are fixed in advance (:class:`FitOptions`, from ``TrainConfig``); nothing
here is tuned on held-out cases.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
from scipy import ndimage

from lib.brats import ET
from lib.evaluation import ENHANCING_MIN_ML, region_dice

from .features import FEATURES_VERSION
from .model import (
    FUSION,
    ONE_STAGE,
    TWO_STAGE,
    Stage,
    Thresholds,
    VoxelClassifier,
    base_features,
    labels_from_regions,
    stage_two_context,
)

logger = logging.getLogger(__name__)

#: Candidate thresholds and component rules the selection looks at (fixed in advance).
THRESHOLD_GRID: tuple[float, ...] = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)
COMPONENT_FRACTIONS: tuple[float, ...] = (0.0, 0.1, 0.3, 1.0)
NEAR_TUMOR_MM, NEAR_EDGE_MM = 8.0, 4.0


@dataclass(frozen=True)
class FitOptions:
    """The classifier's training settings (their defaults live in ``lib.trainers.config.TrainConfig``)."""

    rounds: int
    num_leaves: int
    learning_rate: float
    inner_folds: int
    background_ratio: float
    max_tumor_voxels: int
    num_threads: int
    seed: int

    def lightgbm_params(self) -> dict[str, Any]:
        return {"objective": "multiclass", "num_class": 4, "learning_rate": self.learning_rate,
                "num_leaves": self.num_leaves, "min_data_in_leaf": 40, "feature_fraction": 0.8,
                "bagging_fraction": 0.7, "bagging_freq": 1, "lambda_l2": 1.0, "max_bin": 63,
                "num_threads": self.num_threads, "seed": self.seed, "deterministic": True,
                "force_col_wise": True, "verbose": -1}


@dataclass
class VoxelCase:
    """One case on the working grid, as the classifier sees it.

    ``data``: the preprocessed dict (``image`` (4, X, Y, Z), ``brain_mask`` (1, X, Y, Z)); ``base``:
    :func:`lib.classifier.model.base_features` of it; ``label`` uint8 (X, Y, Z) or None (unlabelled);
    ``cnn_regions`` float (3, X, Y, Z), the network's region probabilities, or None; ``weight``: how
    much its voxels count (generated cases may count less than real ones)."""

    case_id: str
    data: dict[Hashable, Any]
    base: dict[Hashable, Any]
    label: np.ndarray | None
    spacing_mm: float
    cnn_regions: np.ndarray | None = None
    weight: float = 1.0
    _sample: np.ndarray | None = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(np.asarray(self.data["brain_mask"]).shape[1:])

    def voxel_labels(self) -> np.ndarray:
        assert self.label is not None
        return np.ravel(self.label)[self.base["voxel_index"]]


def voxel_case(case_id: str, data: Mapping[Hashable, Any], spacing_mm: float, cnn_regions: np.ndarray | None = None,
               weight: float = 1.0) -> VoxelCase:
    """A :class:`VoxelCase` from a preprocessed case (its ``label`` (1, X, Y, Z), if any, is the truth)."""
    d: dict[Hashable, Any] = {"image": data["image"], "brain_mask": data["brain_mask"]}
    label = np.asarray(data["label"])[0].astype(np.uint8) if data.get("label") is not None else None
    return VoxelCase(case_id, d, base_features(spacing_mm)(d), label, spacing_mm,
                     None if cnn_regions is None else np.asarray(cnn_regions, np.float32), weight)


def sample_voxels(case: VoxelCase, options: FitOptions) -> np.ndarray:
    """Positions (into the case's brain voxels) of its training voxels; fixed per case and seed."""
    if case._sample is not None:
        return case._sample
    rng = np.random.default_rng([options.seed, *case.case_id.encode()])
    labels = case.voxel_labels()
    tumor = np.flatnonzero(labels > 0)
    if tumor.size > options.max_tumor_voxels:
        tumor = rng.choice(tumor, options.max_tumor_voxels, replace=False)
    background = np.flatnonzero(labels == 0)
    n_background = int(round(options.background_ratio * max(tumor.size, 2000)))
    brain = np.asarray(case.data["brain_mask"])[0].astype(bool)
    index = case.base["voxel_index"][background]
    names = case.base["feature_names"]
    edge_mm = case.base["voxels"][background, names.index("edge_mm")]
    if case.label is not None and (case.label > 0).any():
        near = ndimage.distance_transform_edt(case.label == 0) * case.spacing_mm <= NEAR_TUMOR_MM
        near_tumor = np.ravel(near & brain)[index]
    else:
        near_tumor = np.zeros(background.size, bool)
    pools = [(background[near_tumor], 0.4), (background[(edge_mm <= NEAR_EDGE_MM) & ~near_tumor], 0.2)]
    chosen = []
    for pool, share in pools:
        if pool.size:
            chosen.append(rng.choice(pool, min(pool.size, int(share * n_background)), replace=False))
    taken = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
    rest = np.setdiff1d(background, taken, assume_unique=True)
    chosen.append(rng.choice(rest, min(rest.size, n_background - taken.size), replace=False))
    case._sample = np.sort(np.concatenate([tumor, *chosen]))
    return case._sample


def train_stage(rows: Sequence[tuple[np.ndarray, np.ndarray, float]], feature_names: list[str],
                options: FitOptions) -> Stage:
    """Train one stage on ``(features (n, F), labels (n,), case weight)`` blocks."""
    x = np.concatenate([r[0] for r in rows])
    y = np.concatenate([r[1] for r in rows]).astype(np.int32)
    counts = np.bincount(y, minlength=4).astype(np.float64)
    class_weight = np.sqrt(counts.sum() / (4 * np.maximum(counts, 1)))
    weight = class_weight[y] * np.concatenate([np.full(len(r[1]), r[2]) for r in rows])
    dataset = lgb.Dataset(x, y, weight=weight, feature_name=feature_names, free_raw_data=True,
                          params={"max_bin": 63, "verbose": -1})
    booster = lgb.train(options.lightgbm_params(), dataset, num_boost_round=options.rounds)
    return Stage(booster.model_to_string(), list(feature_names))


def deal_folds(cases: Sequence[VoxelCase], n_folds: int) -> list[list[int]]:
    """Case positions dealt into ``n_folds`` folds in order of tumor volume (each fold spans sizes)."""
    def size(case: VoxelCase) -> int:
        return 0 if case.label is None else int(np.count_nonzero(case.label))

    order = sorted(range(len(cases)), key=lambda i: (-size(cases[i]), cases[i].case_id))
    folds: list[list[int]] = [[] for _ in range(max(1, min(n_folds, len(cases))))]
    for rank, i in enumerate(order):
        folds[rank % len(folds)].append(i)
    return folds


def case_score(labels: np.ndarray, truth: np.ndarray | None, spacing_mm: float) -> dict[str, float]:
    """WT and TC Dice and the BraTS ET score (ET Dice, or for a case without ET 1 when under
    :data:`lib.evaluation.ENHANCING_MIN_ML` is called) of working-grid labels."""
    if truth is None:
        raise ValueError("an unlabelled case cannot be scored")
    dice = region_dice(labels, truth)
    voxel_ml = spacing_mm ** 3 / 1000.0
    if float((truth == ET).sum()) * voxel_ml >= ENHANCING_MIN_ML:
        et = dice["ET"]
    else:
        et = float(float((labels == ET).sum()) * voxel_ml < ENHANCING_MIN_ML)
    return {"WT": dice["WT"], "TC": dice["TC"], "ET": et}


def select_thresholds(cases: Sequence[VoxelCase], regions: Sequence[np.ndarray]) -> tuple[Thresholds, dict[str, float]]:
    """Thresholds and component rule by mean WT Dice, then TC Dice, then ET score over ``cases``
    with their (out-of-fold) region probabilities; returns them and the scores they reach."""
    def mean(thresholds: Thresholds, region: str) -> float:
        return float(np.mean([case_score(labels_from_regions(r, thresholds, c.data["image"], c.data["brain_mask"],
                                                             c.spacing_mm), c.label, c.spacing_mm)[region]
                              for c, r in zip(cases, regions, strict=True)]))

    wt, fraction = _select_whole_tumor(cases, regions)
    best = Thresholds(wt=wt, min_component_fraction=fraction)
    best = max((Thresholds(best.wt, t, best.et, best.min_component_fraction) for t in THRESHOLD_GRID),
               key=lambda c: mean(c, "TC"))
    best = max((Thresholds(best.wt, best.tc, t, best.min_component_fraction) for t in (*THRESHOLD_GRID, 0.8, 0.9)),
               key=lambda c: mean(c, "ET"))
    return best, {region: mean(best, region) for region in ("WT", "TC", "ET")}


def _select_whole_tumor(cases: Sequence[VoxelCase], regions: Sequence[np.ndarray]) -> tuple[float, float]:
    """The WT threshold and component rule with the best mean WT Dice (as :func:`labels_from_regions`
    draws the whole tumor: components under the fraction of the largest, and under 0.1 mL, dropped)."""
    totals = np.zeros((len(THRESHOLD_GRID), len(COMPONENT_FRACTIONS)))
    for case, r in zip(cases, regions, strict=True):
        assert case.label is not None
        truth = case.label > 0
        min_voxels = 0.1 / (case.spacing_mm ** 3 / 1000.0)
        for i, t in enumerate(THRESHOLD_GRID):
            components, n = ndimage.label(r[0] > t, np.ones((3, 3, 3), bool))
            sizes = np.bincount(components.ravel())
            sizes[0] = 0
            overlap = np.bincount(components[truth], minlength=n + 1)
            overlap[0] = 0
            for j, fraction in enumerate(COMPONENT_FRACTIONS):
                keep = (sizes >= min_voxels) & (sizes >= fraction * sizes.max()) if n else sizes > 0
                denominator = sizes[keep].sum() + truth.sum()
                totals[i, j] += 1.0 if denominator == 0 else 2.0 * overlap[keep].sum() / denominator
    best_t, best_f = np.unravel_index(int(np.argmax(totals)), totals.shape)
    return THRESHOLD_GRID[int(best_t)], COMPONENT_FRACTIONS[int(best_f)]


def _predict(stage: Stage, case: VoxelCase, matrix: np.ndarray, options: FitOptions, fine: bool = True) -> np.ndarray:
    return stage.predict_volume(matrix, case.base["voxel_index"], case.shape, options.num_threads, fine)


def fit_classifiers(cases: Sequence[VoxelCase], options: FitOptions, variants: Sequence[str],
                    progress: Callable[[str], None] | None = None) -> dict[str, VoxelClassifier]:
    """Train the requested variants on labelled ``cases`` (see the module docstring); every case
    needs ``cnn_regions`` when the fusion is asked for. Returns ``{variant: VoxelClassifier}``,
    each with its thresholds and a training record (cases, out-of-fold scores of the selection,
    seconds)."""
    started = time.monotonic()
    say = progress or logger.info
    if FUSION in variants and any(c.cnn_regions is None for c in cases):
        raise ValueError("the fusion needs the network's region probabilities of every training case")
    spacing = cases[0].spacing_mm
    names1 = list(cases[0].base["feature_names"])
    samples = [sample_voxels(c, options) for c in cases]
    rows1 = [(c.base["voxels"][s], c.voxel_labels()[s], c.weight) for c, s in zip(cases, samples, strict=True)]
    folds = deal_folds(cases, options.inner_folds)

    oof1: list[np.ndarray] = [np.zeros(0)] * len(cases)  # as the second stage sees them: coarse
    fine1: list[np.ndarray] = [np.zeros(0)] * len(cases)  # as the one-stage classifier serves them
    for k, fold in enumerate(folds):
        stage = train_stage([rows1[i] for i in range(len(cases)) if i not in fold], names1, options)
        for i in fold:
            oof1[i] = _predict(stage, cases[i], cases[i].base["voxels"], options, fine=False)
            if ONE_STAGE in variants:
                fine1[i] = _predict(stage, cases[i], cases[i].base["voxels"], options)
        say(f"stage 1, inner fold {k + 1}/{len(folds)} ({time.monotonic() - started:.0f} s)")
    stage1 = train_stage(rows1, names1, options)
    say(f"stage 1 on all {len(cases)} cases ({time.monotonic() - started:.0f} s)")

    record = {"cases": [c.case_id for c in cases], "inner_folds": [[cases[i].case_id for i in f] for f in folds],
              "options": options.__dict__, "features_version": FEATURES_VERSION}
    out: dict[str, VoxelClassifier] = {}
    if ONE_STAGE in variants:
        thresholds, scores = select_thresholds(cases, fine1)
        out[ONE_STAGE] = VoxelClassifier(ONE_STAGE, [stage1], thresholds, spacing,
                                         training={**record, "inner_oof": scores})
    for variant in (v for v in (TWO_STAGE, FUSION) if v in variants):
        contexts = [stage_two_context(c.data, oof1[i], c.cnn_regions if variant == FUSION else None, spacing)
                    for i, c in enumerate(cases)]
        matrices = [np.concatenate([c.base["voxels"], ctx["voxels"]], axis=1) for c, ctx in zip(cases, contexts,
                                                                                             strict=True)]
        names2 = [*names1, *contexts[0]["feature_names"]]
        rows2 = [(m[s], c.voxel_labels()[s], c.weight) for m, c, s in zip(matrices, cases, samples, strict=True)]
        oof2: list[np.ndarray] = [np.zeros(0)] * len(cases)
        for fold in folds:
            stage = train_stage([rows2[i] for i in range(len(cases)) if i not in fold], names2, options)
            for i in fold:
                oof2[i] = _predict(stage, cases[i], matrices[i], options)
        stage2 = train_stage(rows2, names2, options)
        thresholds, scores = select_thresholds(cases, oof2)
        out[variant] = VoxelClassifier(variant, [stage1, stage2], thresholds, spacing,
                                       training={**record, "inner_oof": scores})
        say(f"{variant}: thresholds {thresholds} ({time.monotonic() - started:.0f} s)")
    for classifier in out.values():
        classifier.training["seconds"] = round(time.monotonic() - started, 1)
    return out
