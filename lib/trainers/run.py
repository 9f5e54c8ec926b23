"""One training run from a list of labelled cases: fixed split, cached preprocessing,
landmarks from the training cases, training, then publication only if not worse.

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
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lib.atomic import write_json
from lib.evaluation import mean_score, score_checkpoint
from lib.model.registry import CANDIDATE, PUBLISHED, ModelRegistry, previous_path
from lib.transforms import NyulLandmarks

from .config import TrainConfig
from .data import prepare_case
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
    config = config.with_n4_resolved()
    by_id = {c["case_id"]: c for c in cases}
    split = FixedSplit(split_path, config.val_fraction).assign(by_id)
    train_ids = sorted(c for c, role in split.items() if role == TRAIN)
    val_ids = sorted(c for c, role in split.items() if role == VALIDATION)
    logger.info("split: %d training, %d validation cases (%s)", len(train_ids), len(val_ids), split_path)

    train_cases = [prepare_case(by_id[c], cache_dir, config.spacing_mm, bool(config.n4)) for c in train_ids]
    val_cases = [prepare_case(by_id[c], cache_dir, config.spacing_mm, bool(config.n4)) for c in val_ids]
    landmarks = None
    if learn_landmarks and not config.init_from:
        landmarks = NyulLandmarks.fit_from_data({"image": c.image, "brain_mask": c.brain_mask} for c in train_cases)
    paths = RunPaths.next_to(candidate_path(checkpoint_path), progress_path)
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
