"""The training loop: region-based SegResNet training with a fixed validation set.

The best epoch (by mean validation Dice over WT, TC, ET) is written as a *candidate*
checkpoint; whether it replaces the served model is decided afterwards, by
:func:`lib.trainers.run.run_training`. The run's state is saved after every epoch, so a run
that was killed, or stopped by its time limit, resumes where it was when started again with
the same version. Runs on one CPU/GPU, or on several GPUs with
``torch.distributed`` (one process per GPU, DistributedDataParallel).

One run is four named steps: :func:`_set_up`, then per epoch :func:`_train_epoch` and
:func:`_validate_and_keep_best`, until :func:`_should_stop`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from monai.losses import DiceCELoss
from monai.utils import set_determinism

from lib.atomic import atomic_path, write_json
from lib.evaluation import mean_score, region_dice
from lib.model import NetworkSpec, PredictionSettings, build_network, load_checkpoint, predict_regions, save_checkpoint
from lib.model.predict import autocast, select_device
from lib.net import free_loopback_port
from lib.postprocessing import REGION_ORDER, postprocess
from lib.transforms import NyulLandmarks

from .config import TrainConfig
from .data import PatchDataset, PreparedCase, normalize_case

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a run did: per-region validation Dice of the best epoch, the candidate checkpoint
    holding it (None when no epoch was kept), and the whole history."""

    best_dice: dict[str, float]
    best_epoch: int
    epochs: int
    candidate: str | None
    train_cases: list[str]
    val_cases: list[str]
    duration_s: float
    history: list[dict[str, Any]]
    stopped_by: str


@dataclass(frozen=True)
class RunPaths:
    """Where a run writes: the best epoch (``candidate``), its resumable state after every
    epoch (``state``) and, optionally, a JSON progress record for status queries."""

    candidate: Path
    state: Path
    progress: Path | None = None

    @classmethod
    def next_to(cls, candidate: str | Path, progress: str | Path | None = None) -> RunPaths:
        candidate = Path(candidate)
        return cls(candidate, candidate.with_name(candidate.name + ".state"), Path(progress) if progress else None)


def validate(network: torch.nn.Module, cases: Sequence[PreparedCase], settings: PredictionSettings,
             spacing_mm: float) -> dict[str, float]:
    """Mean Dice per region over whole validation cases on the working grid (``spacing_mm``
    voxels), through the deployed postprocessing."""
    scores = []
    for case in cases:
        regions = predict_regions(network, case.image, settings)
        labels = postprocess(regions, (spacing_mm,) * 3, case.image, case.brain_mask)
        scores.append(region_dice(labels, case.label[0]))
    return {name: float(np.mean([s[name] for s in scores])) for name in REGION_ORDER} if scores else {}


def train(train_cases: Sequence[PreparedCase], val_cases: Sequence[PreparedCase], config: TrainConfig,
          paths: RunPaths, *, landmarks: NyulLandmarks | None, version: str,
          extra_record: dict[str, Any] | None = None) -> TrainResult:
    """Train, validate every ``config.val_every`` epochs, and keep the best epoch at
    ``paths.candidate``. Cases are un-normalised (:func:`lib.trainers.data.prepare_case`), bias-corrected
    as ``config.n4`` says (None: not), which the checkpoint records;
    ``landmarks`` (Nyúl, or None for z-score only) are applied here and stored with the
    weights. A state saved by an earlier run of the same ``version`` is resumed."""
    if not train_cases:
        raise ValueError("no training cases")
    inputs = _RunInputs(train_cases=tuple(train_cases), val_cases=tuple(val_cases), config=config,
                        landmarks=landmarks, paths=paths, version=version, extra_record=extra_record or {})
    if config.world_size > 1:
        port = free_loopback_port()
        with mp.get_context("spawn").Manager() as manager:
            results = manager.dict()
            mp.start_processes(_run_process, args=(config.world_size, port, results, inputs),
                               nprocs=config.world_size, start_method="spawn")
            return results[0]
    return _run(_set_up(0, 1, inputs))


@dataclass(frozen=True)
class _RunInputs:
    """What :func:`_set_up` builds a process's run from, as one value that pickles (each
    process of a multi-GPU run gets a copy through ``torch.multiprocessing``'s spawn).

    The data: ``train_cases`` and ``val_cases``, un-normalised. The optimisation: ``config``
    and the Nyúl ``landmarks`` (None: z-score only, or those of ``config.init_from``). The
    publication: where the candidate, the state and the progress go (``paths``), the run's
    ``version``, and ``extra_record`` (merged into the checkpoint's training record)."""

    train_cases: tuple[PreparedCase, ...]
    val_cases: tuple[PreparedCase, ...]
    config: TrainConfig
    landmarks: NyulLandmarks | None
    paths: RunPaths
    version: str
    extra_record: dict[str, Any]


def _run_process(rank: int, world_size: int, port: int, results: Any, inputs: _RunInputs) -> None:
    dist.init_process_group(inputs.config.backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world_size)
    try:
        result = _run(_set_up(rank, world_size, inputs))
        if rank == 0:
            results[0] = result
        dist.barrier()
    finally:
        dist.destroy_process_group()


@dataclass
class _Data:
    """The cases one process sees: ``batches``, an endless stream of augmented patch batches
    (``image`` float (B, 4, R, R, R), ``regions`` float (B, 3, R, R, R), R = ``config.roi_size``
    voxels); ``val_cases`` normalised, whole (the lead process only, empty elsewhere); the ids
    of all training and validation cases."""

    batches: Iterator[dict[str, torch.Tensor]]
    val_cases: list[PreparedCase]
    train_ids: list[str]
    val_ids: list[str]


@dataclass
class _Optimisation:
    """What a training step changes: the network on ``device``, ``model`` (the network, or its
    DistributedDataParallel wrapper), the optimiser, its per-step cosine schedule and the
    mixed-precision scaler; ``steps_per_epoch`` optimiser steps per epoch in this process
    (the config's, or one pass over the training patches, split over the processes)."""

    device: torch.device
    network: torch.nn.Module
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    steps_per_epoch: int


@dataclass
class _Publication:
    """Where the run's results go and what the candidate checkpoint records with the weights:
    ``paths`` (candidate, state, progress), ``version``, the network's ``spec``, the Nyúl
    ``landmarks`` applied to the cases (None: z-score only) and ``extra_record`` (merged into
    the checkpoint's training record)."""

    paths: RunPaths
    version: str
    spec: NetworkSpec
    landmarks: NyulLandmarks | None
    extra_record: dict[str, Any]


@dataclass
class _Progress:
    """How far the run is, saved after every epoch and restored on resume: the last finished
    ``epoch`` (0: none), the best epoch's per-region validation Dice (``best``, 0..1; empty
    until one is kept) and number, the per-epoch ``history``, and the time trained,
    ``elapsed_before_s`` seconds in earlier slices plus since ``started_s``
    (``time.monotonic()`` seconds) in this one."""

    started_s: float = field(default_factory=time.monotonic)
    elapsed_before_s: float = 0.0
    epoch: int = 0
    best: dict[str, float] = field(default_factory=dict)
    best_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def elapsed_s(self) -> float:
        return self.elapsed_before_s + time.monotonic() - self.started_s


@dataclass
class _Run:
    """Everything one process of a run holds between its steps: which process it is (``rank``
    of ``world_size``), the config, and the four groups."""

    rank: int
    world_size: int
    config: TrainConfig
    data: _Data
    optim: _Optimisation
    publication: _Publication
    progress: _Progress = field(default_factory=_Progress)

    @property
    def lead(self) -> bool:
        return self.rank == 0


def _set_up(rank: int, world_size: int, inputs: _RunInputs) -> _Run:
    """Device, network (new or the checkpoint to fine-tune), optimiser, patch stream; then the
    saved state of an interrupted run of the same version, if there is one."""
    config, landmarks = inputs.config, inputs.landmarks
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    set_determinism(seed=config.seed + rank)
    if world_size > 1 and config.backend == "nccl":
        device = torch.device(f"cuda:{rank}")
    else:
        device = select_device(config.device)
    spec, network = config.spec, build_network(config.spec)
    if config.init_from:
        base = load_checkpoint(config.init_from)
        if abs(base.spacing_mm - config.spacing_mm) > 1e-6:
            raise ValueError(f"the checkpoint works at {base.spacing_mm} mm, the run at {config.spacing_mm} mm")
        spec, network = base.spec, base.network
        landmarks = base.landmarks if landmarks is None else landmarks
    # channels-last 3D: oneDNN's convolution backward is 1.4x faster on CPU this way (measured)
    network = network.to(device).to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    model = torch.nn.parallel.DistributedDataParallel(network) if world_size > 1 else network

    train_norm = [normalize_case(c, landmarks) for c in inputs.train_cases]
    steps = config.steps_per_epoch or max(1, math.ceil(len(train_norm) * config.samples_per_case / config.batch_size))
    steps = max(1, steps // world_size)
    patches = PatchDataset(train_norm, (config.roi_size,) * 3, seed=config.seed + 7919 * rank,
                           samples_per_case=config.samples_per_case, non_enhancing_prob=config.non_enhancing_prob,
                           signal_dropout_prob=config.signal_dropout_prob)
    loader = torch.utils.data.DataLoader(patches, batch_size=config.batch_size, num_workers=config.num_workers,
                                         persistent_workers=config.num_workers > 0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.effective_learning_rate,
                                  weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.max_epochs * steps,
                                                           eta_min=config.effective_learning_rate * 0.02)
    data = _Data(batches=iter(loader),
                 val_cases=[normalize_case(c, landmarks) for c in inputs.val_cases] if rank == 0 else [],
                 train_ids=[c.case_id for c in inputs.train_cases], val_ids=[c.case_id for c in inputs.val_cases])
    optim = _Optimisation(device=device, network=network, model=model, optimizer=optimizer, scheduler=scheduler,
                          scaler=torch.amp.GradScaler(enabled=config.mixed_precision and device.type == "cuda"),
                          steps_per_epoch=steps)
    publication = _Publication(paths=inputs.paths, version=inputs.version, spec=spec, landmarks=landmarks,
                               extra_record=inputs.extra_record)
    run = _Run(rank=rank, world_size=world_size, config=config, data=data, optim=optim, publication=publication)
    if not _resume(run) and config.init_from and run.data.val_cases:
        # fine-tuning: the starting model's score is the bar an epoch must pass to be kept
        run.progress.best = validate(network, run.data.val_cases, _val_settings(run), config.spacing_mm)
        run.progress.history.append({"epoch": 0, "val_dice": run.progress.best})
    return run


def _val_settings(run: _Run) -> PredictionSettings:
    return PredictionSettings(roi_size=(run.config.val_roi_size,) * 3, device=str(run.optim.device),
                              mixed_precision=run.config.mixed_precision)


def _run(run: _Run) -> TrainResult:
    progress, paths = run.progress, run.publication.paths
    stopped_by = "max_epochs"
    while progress.epoch < run.config.max_epochs:
        progress.epoch += 1
        record = _train_epoch(run)
        if run.lead:
            _validate_and_keep_best(run, record)
            progress.history.append(record)
            logger.info("epoch %d/%d %s", progress.epoch, run.config.max_epochs, json.dumps(record))
            _save_state(run)
            _write_progress(run, "RUNNING")
        if _should_stop(run):
            stopped_by = "time_limit"
            break
    kept = progress.best_epoch > 0 and paths.candidate.exists()  # not when an earlier slice published it
    result = TrainResult(best_dice=progress.best, best_epoch=progress.best_epoch, epochs=progress.epoch,
                         candidate=str(paths.candidate) if kept else None,
                         train_cases=run.data.train_ids, val_cases=run.data.val_ids,
                         duration_s=round(progress.elapsed_s(), 1), history=progress.history, stopped_by=stopped_by)
    if run.lead and stopped_by == "max_epochs":
        paths.state.unlink(missing_ok=True)  # finished; a run stopped by its time limit can go on
    return result


def _train_epoch(run: _Run) -> dict[str, Any]:
    """``run.optim.steps_per_epoch`` optimiser steps of region Dice + BCE loss; returns the epoch's record."""
    optim = run.optim
    loss_fn = DiceCELoss(sigmoid=True, smooth_nr=1e-5, smooth_dr=1e-5, squared_pred=True)
    optim.model.train()
    started, losses = time.monotonic(), []
    for _ in range(optim.steps_per_epoch):
        batch = next(run.data.batches)
        image = batch["image"].to(optim.device, memory_format=torch.channels_last_3d)
        target = batch["regions"].to(optim.device)
        optim.optimizer.zero_grad(set_to_none=True)
        with autocast(optim.device, run.config.mixed_precision):
            logits = optim.model(image)
        loss = loss_fn(logits.float(), target)
        optim.scaler.scale(loss).backward()
        optim.scaler.step(optim.optimizer)
        optim.scaler.update()
        optim.scheduler.step()
        losses.append(float(loss.detach()))
    return {"epoch": run.progress.epoch, "loss": float(np.mean(losses)), "lr": optim.scheduler.get_last_lr()[0],
            "epoch_s": round(time.monotonic() - started, 1)}


def _validate_and_keep_best(run: _Run, record: dict[str, Any]) -> None:
    """Validate when due; an epoch that beats the best so far becomes the candidate. Without
    validation cases every epoch does (the last one is kept)."""
    if not run.data.val_cases:
        _keep_candidate(run, {})
        return
    epoch = run.progress.epoch
    if epoch % run.config.val_every and epoch != run.config.max_epochs:
        return
    dice = validate(run.optim.network, run.data.val_cases, _val_settings(run), run.config.spacing_mm)
    record["val_dice"] = dice
    if not run.progress.best or mean_score(dice) > mean_score(run.progress.best):
        _keep_candidate(run, dice)


def _keep_candidate(run: _Run, dice: dict[str, float]) -> None:
    progress, pub = run.progress, run.publication
    progress.best, progress.best_epoch = dice, progress.epoch
    training = {"epoch": progress.epoch, "val_dice": dice, "train_cases": run.data.train_ids,
                "val_cases": run.data.val_ids, "config": run.config.to_dict(),
                "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **pub.extra_record}
    save_checkpoint(pub.paths.candidate, run.optim.network, pub.spec, version=pub.version, landmarks=pub.landmarks,
                    roi_size=(run.config.val_roi_size,) * 3, spacing_mm=run.config.spacing_mm,
                    n4=bool(run.config.n4), training=training)
    logger.info("kept epoch %d as the candidate (val Dice %s)", progress.epoch, dice)


def _should_stop(run: _Run) -> bool:
    """Out of time (decided by the lead process and shared with the others)."""
    time_limit_s = run.config.time_limit_s
    out_of_time = time_limit_s is not None and run.progress.elapsed_s() > time_limit_s
    if run.world_size > 1:
        flag = torch.tensor([1.0 if out_of_time else 0.0], device=run.optim.device)
        dist.broadcast(flag, 0)
        out_of_time = bool(flag.item())
    return out_of_time


def _save_state(run: _Run) -> None:
    """What resuming needs, written atomically after every epoch."""
    optim, progress = run.optim, run.progress
    state = {"version": run.publication.version, "epoch": progress.epoch, "network": optim.network.state_dict(),
             "optimizer": optim.optimizer.state_dict(), "scheduler": optim.scheduler.state_dict(),
             "best": progress.best, "best_epoch": progress.best_epoch, "history": progress.history,
             "elapsed_s": progress.elapsed_s()}
    with atomic_path(run.publication.paths.state, suffix=".pt") as tmp:
        torch.save(state, tmp)


def _resume(run: _Run) -> bool:
    """Continue from the state an interrupted run of the same version saved."""
    optim, progress, path, version = run.optim, run.progress, run.publication.paths.state, run.publication.version
    if not path.exists():
        return False
    state = torch.load(path, map_location=optim.device, weights_only=False)
    if state.get("version") != version:
        logger.warning("ignoring %s: it belongs to run %s, not %s", path, state.get("version"), version)
        return False
    optim.network.load_state_dict(state["network"])
    optim.optimizer.load_state_dict(state["optimizer"])
    optim.scheduler.load_state_dict(state["scheduler"])
    progress.epoch, progress.best, progress.best_epoch = state["epoch"], state["best"], state["best_epoch"]
    progress.history, progress.elapsed_before_s = state["history"], state["elapsed_s"]
    logger.info("resumed run %s after epoch %d (best epoch %d)", version, progress.epoch, progress.best_epoch)
    return True


def _write_progress(run: _Run, state: str) -> None:
    progress, path = run.progress, run.publication.paths.progress
    if path:
        write_json(path, {"state": state, "epoch": progress.epoch, "max_epochs": run.config.max_epochs,
                          "best_dice": progress.best, "best_epoch": progress.best_epoch, "history": progress.history})
