"""The one training configuration: every default lives here, once.

``btl-train`` builds its options from these fields, the MONAI Label train task takes the
request keys listed in :data:`REQUEST_KEYS` with these defaults, and every checkpoint records
the configuration it was trained with (``training["config"]``).

The defaults are the recipe of the bundled model on a 2-core CPU: SegResNet with 8 initial
filters at a 2 mm working resolution, 64-voxel training patches, a 96-voxel window.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from lib.classifier.fit import FitOptions
from lib.errors import InputError
from lib.model import NetworkSpec
from lib.model.checkpoint import read_checkpoint_has_classifier, read_checkpoint_n4
from lib.options import as_flag

#: A guard against runs that would never end (``max_epochs`` 1e9).
MAX_EPOCHS = 10_000


def _option(default: Any, help: str) -> Any:  # noqa: A002 - the argparse word
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (sizes in voxels of the working grid, times in seconds).

    One epoch is ``steps_per_epoch`` optimiser steps of ``batch_size`` patches (None: enough to
    see each training case ``samples_per_case`` times). Validation runs every ``val_every``
    epochs on whole validation cases. ``init_from`` fine-tunes a checkpoint: its network,
    landmarks and working resolution are kept and ``fine_tune_learning_rate`` applies.
    ``world_size`` > 1 starts that many processes (one per GPU) with torch.distributed.
    """

    max_epochs: int = _option(20, "epochs at most")
    steps_per_epoch: int | None = _option(25, "optimiser steps per epoch (0: one pass over the training cases)")
    batch_size: int = _option(4, "patches per step")
    samples_per_case: int = _option(2, "patches drawn from a case each time it is picked")
    roi_size: int = _option(64, "training patch edge in voxels")
    val_roi_size: int = _option(96, "sliding-window edge in voxels (validation and inference)")
    spacing_mm: float = _option(2.0, "working resolution in mm (isotropic)")
    n4: bool | None = _option(None, "N4 bias-field correction before Nyúl, in training and in the served model "
                                    "(unset: as the checkpoint fine-tuned, else off)")
    non_enhancing_prob: float = _option(0.0, "share of training patches whose enhancing tumor is made non-enhancing "
                                             "(lib/trainers/augment.py; 0: off)")
    signal_dropout_prob: float = _option(0.0, "share of training patches with one sequence blacked out over a "
                                              "slab (lib/trainers/augment.py; 0: off)")
    learning_rate: float = _option(2e-3, "AdamW learning rate of a run from scratch (cosine decay)")
    fine_tune_learning_rate: float = _option(5e-4, "learning rate when fine-tuning (init_from)")
    weight_decay: float = _option(1e-5, "AdamW weight decay")
    val_every: int = _option(4, "validate every N epochs")
    val_fraction: float = _option(0.15, "share of new cases put into the fixed validation split")
    min_validation_cases: int = _option(3, "validation cases a run needs to replace the served model on its own "
                                           "(with fewer, it is kept as a candidate an ML admin can serve)")
    seed: int = _option(0, "random seed")
    device: str = _option("auto", "auto (CUDA when present), cuda or cpu")
    mixed_precision: bool = _option(True, "float16 on CUDA, bfloat16 on CPUs that compute it natively")
    num_threads: int | None = _option(None, "torch CPU threads (default: torch's)")
    num_workers: int = _option(1, "data-loader processes")
    time_limit_s: float | None = _option(None, "stop after the epoch that passes this many seconds")
    init_from: str | None = _option(None, "checkpoint to fine-tune")
    init_filters: int = _option(NetworkSpec.init_filters, "SegResNet initial filters (new networks)")
    world_size: int = _option(1, "processes (one per GPU) for torch.distributed")
    backend: str = _option("nccl", "torch.distributed backend (nccl on GPUs, gloo on CPU)")
    classifier: bool | None = _option(None, "train the voxel classifier (lib/classifier) on the network of "
                                            "--init-from, kept as it is; false trains the network (unset: when "
                                            "the checkpoint fine-tuned has a classifier)")
    classifier_variant: str | None = _option(None, "one_stage, two_stage or fusion (network + FLAIR floor); unset: "
                                                   "that of the checkpoint fine-tuned, else two_stage")
    classifier_rounds: int = _option(60, "boosting rounds per stage")
    classifier_leaves: int = _option(31, "leaves per tree")
    classifier_learning_rate: float = _option(0.15, "boosting learning rate")
    classifier_inner_folds: int = _option(2, "folds of the training cases for stacking and threshold selection")
    classifier_background_ratio: float = _option(1.5, "background voxels sampled per tumor voxel")
    classifier_max_tumor_voxels: int = _option(5000, "tumor voxels sampled per case at most")
    extra_cases: str | None = _option(None, "folder(s) of labelled cases always trained on, never validated "
                                           "(e.g. the real and generated training set), separated by ':'")

    def __post_init__(self) -> None:
        positive = ("max_epochs", "batch_size", "samples_per_case", "roi_size", "val_roi_size", "val_every",
                    "init_filters", "world_size", "spacing_mm", "learning_rate", "fine_tune_learning_rate",
                    "min_validation_cases", "classifier_rounds", "classifier_leaves", "classifier_learning_rate",
                    "classifier_inner_folds", "classifier_background_ratio", "classifier_max_tumor_voxels")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise InputError(f"train option '{name}' must be a positive number, got {value!r}")
        for name in ("steps_per_epoch", "time_limit_s", "num_threads"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value <= 0):
                raise InputError(f"train option '{name}' must be positive or unset, got {value!r}")
        for name in ("non_enhancing_prob", "signal_dropout_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"train option '{name}' must be between 0 and 1, got {getattr(self, name)!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise InputError(f"train option 'val_fraction' must be between 0 and 1, got {self.val_fraction!r}")
        if self.classifier_variant not in (None, "one_stage", "two_stage", "fusion"):
            raise InputError(f"train option 'classifier_variant' must be one_stage, two_stage or fusion, "
                             f"got {self.classifier_variant!r}")
        if self.classifier_inner_folds < 2:
            raise InputError(f"train option 'classifier_inner_folds' must be at least 2, "
                             f"got {self.classifier_inner_folds}")
        if self.max_epochs > MAX_EPOCHS:
            raise InputError(f"train option 'max_epochs' must be at most {MAX_EPOCHS}, got {self.max_epochs}")
        for name in ("roi_size", "val_roi_size"):
            if getattr(self, name) % 16:
                raise InputError(f"train option '{name}' must be a multiple of 16 voxels, got {getattr(self, name)}")

    @property
    def effective_learning_rate(self) -> float:
        return self.fine_tune_learning_rate if self.init_from else self.learning_rate

    @property
    def spec(self) -> NetworkSpec:
        """The network of a run from scratch (fine-tuning keeps the checkpoint's)."""
        return NetworkSpec(init_filters=self.init_filters)

    def with_n4_resolved(self) -> TrainConfig:
        """This config with ``n4`` decided: as set, else the setting of the checkpoint it
        fine-tunes, else off. A fine-tuning run may change it: the weights are only a start,
        and the new checkpoint records the preprocessing it was trained with."""
        if self.n4 is not None:
            return self
        return self.replace(n4=read_checkpoint_n4(self.init_from) if self.init_from else False)

    def with_classifier_resolved(self) -> TrainConfig:
        """This config with ``classifier`` decided: as set, else whether the checkpoint it
        fine-tunes has a classifier (a run from scratch trains the network)."""
        if self.classifier is not None:
            return self
        return self.replace(classifier=self.init_from is not None and read_checkpoint_has_classifier(self.init_from))

    def classifier_options(self) -> FitOptions:
        """The voxel classifier's training settings."""
        return FitOptions(rounds=self.classifier_rounds, num_leaves=self.classifier_leaves,
                          learning_rate=self.classifier_learning_rate, inner_folds=self.classifier_inner_folds,
                          background_ratio=self.classifier_background_ratio,
                          max_tumor_voxels=self.classifier_max_tumor_voxels, num_threads=self.num_threads or 0,
                          seed=self.seed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_request(cls, request: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
        """The config a train request asks for: ``base`` with the :data:`REQUEST_KEYS` it sets,
        converted to the field types (requests often carry strings)."""
        base = base or cls()
        types = {f.name: f.type for f in fields(cls)}
        changes = {key: _convert(request[key], types[key], key) for key in REQUEST_KEYS if key in request}
        return base.replace(**changes)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
        """One ``--option`` per field (``spacing_mm`` -> ``--spacing-mm``), defaults from here."""
        for f in fields(cls):
            if f.name in exclude:
                continue
            flag = "--" + f.name.replace("_", "-")
            kind = _base_type(str(f.type))
            if kind is bool:
                parser.add_argument(flag, type=as_flag, default=f.default, metavar="true|false",
                                    help=f"{f.metadata['help']} (default {f.default})")
            else:
                parser.add_argument(flag, type=kind, default=f.default,
                                    help=f"{f.metadata['help']} (default {f.default})")

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> TrainConfig:
        values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
        if values.get("steps_per_epoch") == 0:
            values["steps_per_epoch"] = None
        return cls(**values)


#: What a client may set in a train request (``POST /train/<model>``), with the defaults above.
REQUEST_KEYS: tuple[str, ...] = ("max_epochs", "steps_per_epoch", "batch_size", "roi_size", "val_roi_size",
                                 "spacing_mm", "learning_rate", "fine_tune_learning_rate", "val_every",
                                 "val_fraction", "min_validation_cases", "time_limit_s", "init_filters", "seed",
                                 "classifier", "classifier_variant", "classifier_rounds", "classifier_inner_folds")


def _base_type(annotation: str) -> type:
    """``int | None`` -> int, ``float`` -> float, ...: the type argparse converts to."""
    name = annotation.replace(" | None", "").strip()
    return {"int": int, "float": float, "bool": bool, "str": str}[name]


def _convert(value: Any, annotation: Any, key: str) -> Any:
    if value is None and "None" in str(annotation):
        return None
    kind = _base_type(str(annotation))
    try:
        return as_flag(value) if kind is bool else kind(value)
    except (TypeError, ValueError):
        raise InputError(f"train option '{key}' must be {kind.__name__}, got {value!r}") from None
