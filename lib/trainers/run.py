"""One training run from a list of labelled cases: fixed split, cached preprocessing,
landmarks from the training cases, training, then publication only if not worse.

A run trains the network (:func:`lib.trainers.engine.train`) or, when the config says
``classifier`` (by default whenever the model it starts from has one), the voxel classifier on top
of that model's network, which stays as it is (:func:`train_classifier`: minutes on a CPU).

Used by the MONAI Label train task and by ``btl-train``. No run replaces a better model
silently: the best epoch is a candidate, and it is published (moved over the served
checkpoint, atomically) only when its Dice on the fixed validation cases, measured through
the served pipeline on each case's own grid, is at least that of the model being served,
and there are at least ``min_validation_cases`` of them (one or two cases are too thin to
replace a model on: the label-efficiency benchmark published worse models on such evidence).
Otherwise it stays next to it as ``<name>.candidate.pt`` and the result says why.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lib.atomic import write_json
from lib.brats import labelled_cases
from lib.classifier.fit import VoxelCase, case_score, fit_classifiers, voxel_case
from lib.classifier.model import TWO_STAGE
from lib.evaluation import mean_score, score_checkpoint
from lib.model import PredictionSettings, load_checkpoint, predict_regions
from lib.model.checkpoint import with_classifier
from lib.model.registry import CANDIDATE, PUBLISHED, ModelRegistry, previous_path
from lib.transforms import NyulLandmarks

from .config import TrainConfig
from .data import PreparedCase, normalize_case, prepare_case
from .engine import RunPaths, TrainResult, train
from .split import TRAIN, VALIDATION, FixedSplit

logger = logging.getLogger(__name__)


@dataclass
class Publication:
    """The decision on a run's candidate: Dice of the candidate and of the served model on the
    validation cases (original grids), and whether the candidate replaced it."""

    published: bool
    reason: str
    candidate_dice: dict[str, float]
    served_dice: dict[str, float]
    checkpoint: str | None


def candidate_path(checkpoint_path: str | Path) -> Path:
    """Where a run keeps its best epoch before (or instead of) publishing it."""
    path = Path(checkpoint_path)
    return path.with_name(path.stem + ".candidate" + path.suffix)


def run_training(cases: Sequence[dict[str, Any]], checkpoint_path: str | Path, config: TrainConfig, *,
                 split_path: str | Path, cache_dir: str | Path | None, version: str,
                 served: str | Path | None = None, progress_path: str | Path | None = None,
                 learn_landmarks: bool = True,
                 registry: ModelRegistry | None = None) -> tuple[TrainResult, Publication]:
    """Train on ``cases`` (dicts ``{"case_id", "image", "label"}``, optionally ``"label_version"``)
    and publish the best epoch at ``checkpoint_path`` if it is not worse than ``served`` (the
    model served now; None: none) on at least ``config.min_validation_cases`` validation cases.
    The best epoch, published or not, goes into ``registry`` with its validation Dice and the
    labels it was trained on.

    The split recorded at ``split_path`` is extended with new cases, never changed for old
    ones. Nyúl landmarks are learned from the training cases when ``learn_landmarks`` and
    the run starts from scratch; a fine-tuning run (``config.init_from``) keeps those of
    the checkpoint it starts from, so the model sees the intensities it was trained on.
    """
    config = config.with_n4_resolved().with_classifier_resolved()
    by_id = {c["case_id"]: c for c in cases}
    split = FixedSplit(split_path, config.val_fraction).assign(by_id)
    train_ids = sorted(c for c, role in split.items() if role == TRAIN)
    val_ids = sorted(c for c, role in split.items() if role == VALIDATION)
    logger.info("split: %d training, %d validation cases (%s)", len(train_ids), len(val_ids), split_path)

    if config.classifier:
        if not config.init_from:
            raise ValueError("a classifier is trained on the network of a checkpoint: set init_from")
        config = config.replace(spacing_mm=load_checkpoint(config.init_from).spacing_mm)
    train_cases = [prepare_case(by_id[c], cache_dir, config.spacing_mm, bool(config.n4)) for c in train_ids]
    val_cases = [prepare_case(by_id[c], cache_dir, config.spacing_mm, bool(config.n4)) for c in val_ids]
    paths = RunPaths.next_to(candidate_path(checkpoint_path), progress_path)
    if config.classifier:
        extra = [case for folder in (config.extra_cases or "").split(":") if folder for case in labelled_cases(folder)]
        extra_cases = [prepare_case(c, cache_dir, config.spacing_mm, bool(config.n4)) for c in extra
                       if c["case_id"] not in by_id]
        result = train_classifier(train_cases + extra_cases, val_cases, config, paths.candidate, version=version)
    else:
        landmarks = None
        if learn_landmarks and not config.init_from:
            landmarks = NyulLandmarks.fit_from_data({"image": c.image, "brain_mask": c.brain_mask}
                                                    for c in train_cases)
        result = train(train_cases, val_cases, config, paths, landmarks=landmarks, version=version)
    publication = publish_if_not_worse(result, checkpoint_path, served, [by_id[c] for c in val_ids],
                                       config.min_validation_cases)
    if registry is not None and publication.checkpoint is not None:
        registry.register(publication.checkpoint, PUBLISHED if publication.published else CANDIDATE,
                          labels={c: by_id[c].get("label_version") for c in sorted(split)},
                          validation_dice=publication.candidate_dice, served_dice=publication.served_dice,
                          validation_cases=val_ids, reason=publication.reason)
    if progress_path:
        write_json(progress_path, {"state": "DONE", **asdict(result), "publication": asdict(publication)})
    return result, publication


def train_classifier(train_cases: Sequence[PreparedCase], val_cases: Sequence[PreparedCase], config: TrainConfig,
                     candidate: str | Path, *, version: str) -> TrainResult:
    """Train ``config.classifier_variant`` (unset: the variant of ``config.init_from``'s classifier,
    else the two-stage one; :func:`lib.classifier.fit.fit_classifiers`, thresholds
    chosen on inner folds of ``train_cases``) on the network and preprocessing of
    ``config.init_from``, and write it with them at ``candidate``. Its Dice on ``val_cases`` (working
    grid; ET as the BraTS score) is the run's ``best_dice``; publication compares on their own grids."""
    started = time.monotonic()
    base = load_checkpoint(config.init_from or "")
    settings = PredictionSettings(roi_size=base.roi_size, device=config.device,
                                  mixed_precision=config.mixed_precision)

    def as_voxels(case: PreparedCase) -> VoxelCase:
        c = normalize_case(case, base.landmarks)
        data: dict[Any, Any] = {"image": c.image, "brain_mask": c.brain_mask, "label": c.label}
        return voxel_case(c.case_id, data, base.spacing_mm, predict_regions(base.network, c.image, settings))

    cases = [as_voxels(c) for c in train_cases]
    logger.info("classifier: %d training cases prepared (%.0f s)", len(cases), time.monotonic() - started)
    variant = config.classifier_variant or (base.classifier.variant if base.classifier else TWO_STAGE)
    classifier = fit_classifiers(cases, config.classifier_options(), [variant])[variant]
    classifier.training.update({"config": config.to_dict(), "network": base.version})
    val_scores = []
    for case in (as_voxels(c) for c in val_cases):
        regions = classifier.regions_from_features(case.base, case.data, case.cnn_regions)
        val_scores.append(case_score(classifier.labels(regions, case.data["image"], case.data["brain_mask"]),
                                     case.label, base.spacing_mm))
    dice = {r: float(sum(s[r] for s in val_scores) / len(val_scores)) for r in ("WT", "TC", "ET")} if val_scores else {}
    with_classifier(base, classifier, candidate, version=version,
                    training={"config": config.to_dict(), "val_dice": dice, "train_cases": [c.case_id for c in cases],
                              "val_cases": [c.case_id for c in val_cases], "classifier": classifier.training,
                              "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    duration = round(time.monotonic() - started, 1)
    return TrainResult(best_dice=dice, best_epoch=1, epochs=1, candidate=str(candidate),
                       train_cases=[c.case_id for c in cases], val_cases=[c.case_id for c in val_cases],
                       duration_s=duration, history=[{"epoch": 1, "val_dice": dice, "seconds": duration,
                                                      "thresholds": classifier.thresholds.to_dict()}],
                       stopped_by="classifier")


def publish_if_not_worse(result: TrainResult, checkpoint_path: str | Path, served: str | Path | None,
                         val_cases: Sequence[dict[str, Any]], min_validation_cases: int) -> Publication:
    """Move the run's candidate over ``checkpoint_path`` when it scores at least as well as
    ``served`` on ``val_cases`` and there are at least ``min_validation_cases`` of them (no
    minimum when nothing is served); otherwise leave it where it is and say why."""
    if result.candidate is None:
        return Publication(False, "no epoch was kept", {}, {}, None)
    served_path = Path(served) if served is not None and Path(served).is_file() else None
    candidate = score_checkpoint(result.candidate, val_cases) if val_cases else {}
    current = score_checkpoint(served_path, val_cases) if val_cases and served_path else {}
    refusal = None
    if served_path is not None and len(val_cases) < min_validation_cases:
        refusal = (f"{len(val_cases)} validation case(s), fewer than the {min_validation_cases} a run needs to "
                   f"replace the served model (an ML admin can serve it from the registry)")
    elif served_path is not None and mean_score(candidate) < mean_score(current):
        refusal = (f"mean validation Dice {mean_score(candidate):.3f} is below the served model's "
                   f"{mean_score(current):.3f}")
    if refusal is not None:
        reason = f"kept as a candidate at {result.candidate}: {refusal}"
        logger.warning("not published: %s", reason)
        return Publication(False, reason, candidate, current, result.candidate)
    if served_path is None:
        reason = "published: no model was served"
    else:
        reason = f"published: mean validation Dice {mean_score(candidate):.3f} >= {mean_score(current):.3f}"
    target = Path(checkpoint_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        os.replace(target, previous_path(target))
    os.replace(result.candidate, target)
    logger.info("%s (%s)", reason, target)
    return Publication(True, reason, candidate, current, str(target))
