"""The training loop: region-based SegResNet training with fixed validation and atomic
publication of the best checkpoint. Runs on one CPU/GPU, or on several GPUs with
``torch.distributed`` (one process per GPU, DistributedDataParallel).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from monai.losses import DiceCELoss
from monai.utils import set_determinism

from lib.atomic import write_json
from lib.model import NetworkSpec, PredictionSettings, build_network, load_checkpoint, predict_regions, save_checkpoint
from lib.net import free_loopback_port
from lib.postprocessing import REGION_ORDER, labels_to_regions, regions_to_labels, remove_small_lesions
from lib.transforms import NyulLandmarks

from .data import PatchDataset, PreparedCase, normalize_case

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Settings of one training run.

    One epoch is ``steps_per_epoch`` optimiser steps of ``batch_size`` patches of
    ``roi_size`` voxels at ``spacing_mm`` (the working resolution, stored in the checkpoint);
    default steps: enough to see each training case once.
    Validation every ``val_every`` epochs on whole cases. ``time_limit_s`` stops after
    the epoch in which the limit is passed. ``init_from``: checkpoint to fine-tune
    (its spec and landmarks are kept); otherwise a new network of ``spec``.
    ``world_size`` > 1 starts that many processes (``backend`` "nccl" on GPUs, "gloo" on CPU).
    """

    max_epochs: int = 20
    steps_per_epoch: int | None = None
    batch_size: int = 2
    samples_per_case: int = 2
    roi_size: tuple[int, int, int] = (96, 96, 96)
    val_roi_size: tuple[int, int, int] = (128, 128, 128)
    spacing_mm: float = 1.0
    learning_rate: float = 2e-3
    weight_decay: float = 1e-5
    val_every: int = 1
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True
    num_threads: int | None = None
    num_workers: int = 1
    time_limit_s: float | None = None
    init_from: str | None = None
    spec: NetworkSpec = field(default_factory=NetworkSpec)
    world_size: int = 1
    backend: str = "nccl"


@dataclass
class TrainResult:
    """What a run did: per-region validation Dice of the best epoch and the whole history."""

    best_dice: dict[str, float]
    best_epoch: int
    epochs: int
    checkpoint: str | None
    train_cases: list[str]
    val_cases: list[str]
    duration_s: float
    history: list[dict[str, Any]]
    stopped_by: str


def region_dice(pred_labels: np.ndarray, true_labels: np.ndarray) -> dict[str, float]:
    """Dice of WT, TC, ET between two label maps (X, Y, Z); 1.0 when a region is absent in both."""
    p, t = labels_to_regions(pred_labels) > 0, labels_to_regions(true_labels) > 0
    out = {}
    for i, name in enumerate(REGION_ORDER):
        denom = p[i].sum() + t[i].sum()
        out[name] = 1.0 if denom == 0 else float(2.0 * (p[i] & t[i]).sum() / denom)
    return out


def validate(network: torch.nn.Module, cases: Sequence[PreparedCase], settings: PredictionSettings,
             spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> dict[str, float]:
    """Mean Dice per region over whole validation cases (at the working resolution, whose
    voxel size is ``spacing`` mm), through the deployed postprocessing."""
    scores = []
    for case in cases:
        labels = remove_small_lesions(regions_to_labels(predict_regions(network, case.image, settings)), spacing)
        scores.append(region_dice(labels, case.label[0]))
    return {name: float(np.mean([s[name] for s in scores])) for name in REGION_ORDER} if scores else {}


def train(train_cases: Sequence[PreparedCase], val_cases: Sequence[PreparedCase], config: TrainConfig,
          checkpoint_path: str | Path, *, landmarks: NyulLandmarks | None, version: str,
          progress_path: str | Path | None = None, extra_record: dict[str, Any] | None = None) -> TrainResult:
    """Train, validate every ``val_every`` epochs, and publish the best checkpoint atomically
    at ``checkpoint_path``. Cases are un-normalised (:func:`lib.trainers.data.prepare_case`);
    ``landmarks`` (Nyúl, or None for z-score only) are applied here and stored in the
    checkpoint. ``progress_path``: JSON written after every epoch (for status queries)."""
    if not train_cases:
        raise ValueError("no training cases")
    args = (list(train_cases), list(val_cases), config, str(checkpoint_path), landmarks, version,
            str(progress_path) if progress_path else None, extra_record or {})
    if config.world_size > 1:
        port = free_loopback_port()
        with mp.get_context("spawn").Manager() as manager:
            results = manager.dict()
            mp.start_processes(_run, args=(config.world_size, port, results, *args), nprocs=config.world_size,
                               start_method="spawn")
            return results[0]
    return _run(0, 1, None, None, *args)


def _run(rank: int, world_size: int, port: int | None, results: Any, train_cases: list[PreparedCase],
         val_cases: list[PreparedCase], config: TrainConfig, checkpoint_path: str,
         landmarks: NyulLandmarks | None, version: str, progress_path: str | None,
         extra_record: dict[str, Any]) -> TrainResult:
    distributed = world_size > 1
    if distributed:
        dist.init_process_group(config.backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world_size)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    set_determinism(seed=config.seed + rank)
    device = torch.device(f"cuda:{rank}") if distributed and config.backend == "nccl" else \
        (torch.device("cuda") if config.device in ("auto", "cuda") and torch.cuda.is_available() else torch.device("cpu"))
    started = time.monotonic()

    spec = config.spec
    network = build_network(spec)
    if config.init_from:
        base = load_checkpoint(config.init_from)
        if abs(base.spacing_mm - config.spacing_mm) > 1e-6:
            raise ValueError(f"the checkpoint works at {base.spacing_mm} mm, the run at {config.spacing_mm} mm")
        spec, network = base.spec, base.network
        landmarks = base.landmarks if landmarks is None else landmarks
    network = network.to(device)
    model: torch.nn.Module = torch.nn.parallel.DistributedDataParallel(network) if distributed else network

    train_norm = [normalize_case(c, landmarks) for c in train_cases]
    val_norm = [normalize_case(c, landmarks) for c in val_cases] if rank == 0 else []
    steps = config.steps_per_epoch or max(1, math.ceil(len(train_norm) * config.samples_per_case / config.batch_size))
    steps = max(1, steps // world_size)
    loader = torch.utils.data.DataLoader(
        PatchDataset(train_norm, config.roi_size, seed=config.seed + 7919 * rank, samples_per_case=config.samples_per_case),
        batch_size=config.batch_size, num_workers=config.num_workers,
        persistent_workers=config.num_workers > 0)
    batches = iter(loader)

    loss_fn = DiceCELoss(sigmoid=True, smooth_nr=1e-5, smooth_dr=1e-5, squared_pred=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.max_epochs * steps,
                                                           eta_min=config.learning_rate * 0.02)
    scaler = torch.amp.GradScaler(enabled=config.mixed_precision and device.type == "cuda")
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    val_settings = PredictionSettings(roi_size=config.val_roi_size, device=str(device),
                                      mixed_precision=config.mixed_precision)

    history: list[dict[str, Any]] = []
    best: dict[str, float] = {}
    best_score, best_epoch, stopped_by, epoch = -1.0, 0, "max_epochs", 0
    if config.init_from and val_norm:
        # fine-tuning: publish only a model that beats the one it starts from
        best = validate(network, val_norm, val_settings, (config.spacing_mm,) * 3)
        best_score = float(np.mean(list(best.values())))
        history.append({"epoch": 0, "val_dice": best})
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        t0, losses = time.monotonic(), []
        for _ in range(steps):
            batch = next(batches)
            image, target = batch["image"].to(device), batch["regions"].to(device)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=config.mixed_precision):
                logits = model(image)
            loss = loss_fn(logits.float(), target)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            losses.append(float(loss.detach()))
        record: dict[str, Any] = {"epoch": epoch, "loss": float(np.mean(losses)), "lr": scheduler.get_last_lr()[0],
                                  "epoch_s": round(time.monotonic() - t0, 1)}
        if rank == 0 and val_norm and (epoch % config.val_every == 0 or epoch == config.max_epochs):
            dice = validate(network, val_norm, val_settings, (config.spacing_mm,) * 3)
            record["val_dice"] = dice
            score = float(np.mean(list(dice.values())))
            if score > best_score:
                best_score, best, best_epoch = score, dice, epoch
                _publish(network, spec, checkpoint_path, landmarks, version, config, train_norm, val_norm,
                         best, epoch, extra_record)
        elif rank == 0 and not val_norm:
            # no validation cases: the last epoch is the one published
            best_epoch = epoch
            _publish(network, spec, checkpoint_path, landmarks, version, config, train_norm, val_norm,
                     {}, epoch, extra_record)
        history.append(record)
        logger.info("epoch %d/%d %s", epoch, config.max_epochs, json.dumps(record))
        if rank == 0 and progress_path:
            write_json(progress_path, {"state": "RUNNING", "epoch": epoch, "max_epochs": config.max_epochs,
                                        "best_dice": best, "best_epoch": best_epoch, "history": history})
        out_of_time = config.time_limit_s is not None and time.monotonic() - started > config.time_limit_s
        if distributed:
            flag = torch.tensor([1.0 if out_of_time else 0.0], device=device)
            dist.broadcast(flag, 0)
            out_of_time = bool(flag.item())
        if out_of_time:
            stopped_by = "time_limit"
            break

    result = TrainResult(best_dice=best, best_epoch=best_epoch, epochs=epoch,
                         checkpoint=checkpoint_path if best_epoch else None,
                         train_cases=[c.case_id for c in train_cases], val_cases=[c.case_id for c in val_cases],
                         duration_s=round(time.monotonic() - started, 1), history=history, stopped_by=stopped_by)
    if rank == 0 and progress_path:
        write_json(progress_path, {"state": "DONE", **asdict(result)})
    if distributed:
        if results is not None and rank == 0:
            results[0] = result
        dist.barrier()
        dist.destroy_process_group()
    return result


def _publish(network: torch.nn.Module, spec: NetworkSpec, path: str, landmarks: NyulLandmarks | None, version: str,
             config: TrainConfig, train_cases: Sequence[PreparedCase], val_cases: Sequence[PreparedCase],
             dice: dict[str, float], epoch: int, extra_record: dict[str, Any]) -> None:
    record = {"epoch": epoch, "val_dice": dice, "train_cases": [c.case_id for c in train_cases],
              "val_cases": [c.case_id for c in val_cases], "roi_size": list(config.roi_size),
              "learning_rate": config.learning_rate, "batch_size": config.batch_size,
              "published": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra_record}
    save_checkpoint(path, network, spec, version=version, landmarks=landmarks, roi_size=config.val_roi_size,
                    spacing_mm=config.spacing_mm,
                    training=record)
    logger.info("published %s (epoch %d, val Dice %s)", path, epoch, dice)


