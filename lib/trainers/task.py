"""MONAI Label training task: a thin adapter from a train request to :func:`run_training`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.train import TrainTask

from lib.options import as_flag
from lib.errors import InputError
from lib.model import load_checkpoint

from .engine import TrainConfig
from .run import run_training

#: Request keys a client may set, with their defaults (shown in /info/ as the trainer's config).
DEFAULTS: dict[str, Any] = {
    "max_epochs": 10,
    "steps_per_epoch": 0,
    "learning_rate": 5e-4,
    "batch_size": 2,
    "roi_size": 64,
    "spacing_mm": 2.0,
    "val_fraction": 0.2,
    "val_every": 1,
    "fine_tune": True,
    "multi_gpu": True,
}


class BrainTumorTraining(TrainTask):
    """Trains on the datastore's ``final`` labels and publishes the best checkpoint at
    ``checkpoint_path``, which inference picks up on its next request. The split, the
    preprocessing cache and the progress record live in ``work_dir``. ``current_model``
    returns the checkpoint now served (the starting point when ``fine_tune``)."""

    def __init__(self, checkpoint_path: str | Path, work_dir: str | Path,
                 current_model: Callable[[], Path], name: str = "brats_segresnet") -> None:
        super().__init__("Train the brain tumor SegResNet on submitted (final) labels")
        self.checkpoint_path = Path(checkpoint_path)
        self.work_dir = Path(work_dir)
        self.current_model = current_model
        self.name = name

    def config(self) -> dict[str, Any]:
        return dict(DEFAULTS)

    def stats(self) -> dict[str, Any]:
        try:
            return json.loads((self.work_dir / "progress.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict[str, Any]:
        opts = {**DEFAULTS, **{k: request[k] for k in DEFAULTS if k in request}}
        cases = datastore.datalist()
        if len(cases) < 1:
            raise InputError("no studies with a final label to train on; submit corrections first")
        roi, spacing, val_roi = int(opts["roi_size"]), float(opts["spacing_mm"]), None
        fine_tune, multi_gpu = as_flag(opts["fine_tune"]), as_flag(opts["multi_gpu"])
        if fine_tune:
            # a fine-tuned model keeps the resolution and window of the model it starts from
            base = load_checkpoint(self.current_model())
            spacing, val_roi = base.spacing_mm, base.roi_size
            roi = int(base.training.get("roi_size", [roi])[0]) if "roi_size" not in request else roi
        config = TrainConfig(
            spacing_mm=spacing, val_roi_size=val_roi or (2 * roi,) * 3,
            max_epochs=int(opts["max_epochs"]), steps_per_epoch=int(opts["steps_per_epoch"]) or None,
            batch_size=int(opts["batch_size"]), roi_size=(roi, roi, roi), learning_rate=float(opts["learning_rate"]),
            val_every=int(opts["val_every"]),
            init_from=str(self.current_model()) if fine_tune else None,
            world_size=torch.cuda.device_count() if multi_gpu and torch.cuda.device_count() > 1 else 1,
        )
        version = f"{self.name}-{time.strftime('%Y%m%dT%H%M%S')}"
        result = run_training(cases, self.checkpoint_path, config, split_path=self.work_dir / "split.json",
                              cache_dir=self.work_dir / "cache", version=version,
                              val_fraction=float(opts["val_fraction"]), progress_path=self.work_dir / "progress.json")
        return {"model_version": version if result.checkpoint else None, "best_dice": result.best_dice,
                "best_epoch": result.best_epoch, "epochs": result.epochs, "train_cases": result.train_cases,
                "val_cases": result.val_cases, "duration_s": result.duration_s, "checkpoint": result.checkpoint}
