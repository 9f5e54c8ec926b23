"""MONAI Label training task: a thin adapter from a train request to :func:`run_training`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.train import TrainTask

from lib.atomic import write_json
from lib.errors import InputError
from lib.model import load_checkpoint
from lib.model.registry import ModelRegistry
from lib.options import as_flag

from .config import REQUEST_KEYS, TrainConfig
from .lock import TrainerLock
from .run import run_training

#: Request keys beyond the config's: fine-tune the served model (True) or start from scratch.
RUN_KEYS: dict[str, Any] = {"fine_tune": True, "multi_gpu": True}


class BrainTumorTraining(TrainTask):
    """Trains on the datastore's ``final`` labels and publishes the best epoch at
    ``checkpoint_path`` when it is not worse than the model served now (``current_model``,
    also the starting point when ``fine_tune``); inference picks it up on its next request.
    The split, the preprocessing cache and the progress record live in ``work_dir``; every
    run's best epoch is recorded in ``registry``. A served model with a voxel classifier has its
    classifier retrained (on the corrections and ``extra_cases``, the server's own folders of
    labelled cases, which a request cannot name); its network stays as it is."""

    def __init__(self, checkpoint_path: str | Path, work_dir: str | Path,
                 current_model: Callable[[], Path], registry: ModelRegistry,
                 name: str = "brats_segresnet", extra_cases: str | None = None) -> None:
        super().__init__("Train the brain tumor model (its voxel classifier, or the network) on submitted "
                         "(final) labels")
        self.extra_cases = extra_cases
        self.checkpoint_path = Path(checkpoint_path)
        self.work_dir = Path(work_dir)
        self.current_model = current_model
        self.registry = registry
        self.name = name
        self.lock = TrainerLock(self.work_dir / "trainer.lock")

    def config(self) -> dict[str, Any]:
        defaults = TrainConfig()
        return {**{key: getattr(defaults, key) for key in REQUEST_KEYS}, **RUN_KEYS}

    def stats(self) -> dict[str, Any]:
        """The last run's progress record; a run that says RUNNING while no trainer holds the
        lock was stopped or killed, and says INTERRUPTED."""
        try:
            progress = json.loads((self.work_dir / "progress.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}
        if progress.get("state") == "RUNNING" and self.lock.holder() is None:
            progress["state"] = "INTERRUPTED"
        return progress

    def run_config(self, request: dict[str, Any]) -> TrainConfig:
        """The configuration a request asks for. Fine-tuning starts from the served model and
        keeps its working resolution, window and patch size unless the request sets them."""
        config = TrainConfig.from_request(request).replace(extra_cases=self.extra_cases)
        if as_flag(request.get("fine_tune", RUN_KEYS["fine_tune"])):
            served = self.current_model()
            base = load_checkpoint(served)
            if "spacing_mm" in request and abs(config.spacing_mm - base.spacing_mm) > 1e-6:
                raise InputError(f"fine-tuning keeps the served model's resolution ({base.spacing_mm} mm); "
                                 "set fine_tune to false to train at another")
            recorded = base.training.get("config", {}).get("roi_size", config.roi_size)
            inherited = {"val_roi_size": base.roi_size[0],
                         "roi_size": int(recorded[0] if isinstance(recorded, (list, tuple)) else recorded)}
            config = config.replace(init_from=str(served), spacing_mm=base.spacing_mm,
                                    **{k: v for k, v in inherited.items() if k not in request})
        gpus = torch.cuda.device_count()
        if as_flag(request.get("multi_gpu", RUN_KEYS["multi_gpu"])) and gpus > 1:
            config = config.replace(world_size=gpus)
        return config

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict[str, Any]:
        config = self.run_config(request)
        cases = datastore.datalist()
        if len(cases) < 1:
            raise InputError("no studies with a final label to train on; submit corrections first")
        version = f"{self.name}-{time.strftime('%Y%m%dT%H%M%S')}"
        with self.lock.hold():
            write_json(self.work_dir / "progress.json", {"state": "RUNNING", "epoch": 0, "version": version,
                                                         "max_epochs": config.max_epochs})
            result, publication = run_training(
                cases, self.checkpoint_path, config, split_path=self.work_dir / "split.json",
                cache_dir=self.work_dir / "cache", version=version, served=self.current_model(),
                progress_path=self.work_dir / "progress.json", registry=self.registry)
        return {"model_version": version if publication.published else None, "best_dice": result.best_dice,
                "best_epoch": result.best_epoch, "epochs": result.epochs, "train_cases": result.train_cases,
                "val_cases": result.val_cases, "duration_s": result.duration_s, "publication": asdict(publication)}
