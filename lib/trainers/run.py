"""One training run from a list of labelled cases: fixed split, cached preprocessing,
landmarks from the training cases, training, publication. Used by the MONAI Label train
task and by the ``btl-train`` command that produced the bundled model."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lib.transforms import NyulLandmarks

from .data import prepare_case
from .engine import TrainConfig, TrainResult, train
from .split import TRAIN, VALIDATION, FixedSplit

logger = logging.getLogger(__name__)


def run_training(cases: Sequence[dict[str, Any]], checkpoint_path: str | Path, config: TrainConfig, *,
                 split_path: str | Path, cache_dir: str | Path | None, version: str,
                 val_fraction: float = 0.2, progress_path: str | Path | None = None,
                 learn_landmarks: bool = True) -> TrainResult:
    """Train on ``cases`` (dicts ``{"case_id", "image", "label"}``) and publish the best
    checkpoint at ``checkpoint_path``.

    The split recorded at ``split_path`` is extended with new cases, never changed for old
    ones. Nyúl landmarks are learned from the training cases when ``learn_landmarks`` and
    the run starts from scratch; a fine-tuning run (``config.init_from``) keeps those of
    the checkpoint it starts from, so the model sees the intensities it was trained on.
    """
    by_id = {c["case_id"]: c for c in cases}
    split = FixedSplit(split_path, val_fraction).assign(by_id)
    train_ids = sorted(c for c, role in split.items() if role == TRAIN)
    val_ids = sorted(c for c, role in split.items() if role == VALIDATION)
    logger.info("split: %d training, %d validation cases (%s)", len(train_ids), len(val_ids), split_path)

    train_cases = [prepare_case(by_id[c], cache_dir, config.spacing_mm) for c in train_ids]
    val_cases = [prepare_case(by_id[c], cache_dir, config.spacing_mm) for c in val_ids]
    landmarks = None
    if learn_landmarks and not config.init_from:
        landmarks = NyulLandmarks.fit_from_data(
            {"image": c.image, "brain_mask": c.brain_mask} for c in train_cases)
    record = {"config": {k: v for k, v in asdict(config).items() if k != "spec"}}
    return train(train_cases, val_cases, config, checkpoint_path, landmarks=landmarks, version=version,
                 progress_path=progress_path, extra_record=record)
