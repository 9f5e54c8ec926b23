"""Checkpoint file: weights plus everything inference needs to reproduce training's conditions.

One ``.pt`` file holds the network spec, the weights (float16 to keep the file small), the
Nyúl landmarks the model was trained with, the sliding-window size, the model version and
the training record. Files are written atomically, so a reader never sees half a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lib.atomic import atomic_path
from lib.transforms import NyulLandmarks

from .network import NetworkSpec, build_network

FORMAT = "braintumorlabel-checkpoint/1"


@dataclass
class Checkpoint:
    """A loaded checkpoint: the network (eval mode, CPU) and its metadata."""

    network: torch.nn.Module
    spec: NetworkSpec
    version: str
    landmarks: NyulLandmarks | None
    roi_size: tuple[int, int, int]
    spacing_mm: float
    training: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def save_checkpoint(path: str | Path, network: torch.nn.Module, spec: NetworkSpec, *, version: str,
                    landmarks: NyulLandmarks | None, roi_size: tuple[int, int, int], spacing_mm: float,
                    training: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically at ``path`` (replacing an older file in one step).
    ``spacing_mm``: the isotropic working resolution the network sees (preprocessing
    resamples to it); ``roi_size``: the sliding window in voxels at that resolution."""
    module = network.module if isinstance(network, torch.nn.parallel.DistributedDataParallel) else network
    state = {k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu())
             for k, v in module.state_dict().items()}
    payload = {
        "format": FORMAT,
        "spec": spec.to_dict(),
        "state_dict": state,
        "version": version,
        "landmarks": landmarks.to_dict() if landmarks is not None else None,
        "roi_size": list(roi_size),
        "spacing_mm": float(spacing_mm),
        "training": training or {},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)
    return path


def _payload(path: Path) -> dict[str, Any]:
    """The saved dictionary; its tensors memory-mapped, so that reading metadata costs little."""
    payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} file")
    return payload


def read_checkpoint_record(path: str | Path) -> tuple[str, dict[str, Any]]:
    """The version and training record of a checkpoint, without building its network.
    Raises ``ValueError`` for a file that is not a checkpoint."""
    payload = _payload(Path(path))
    return str(payload["version"]), dict(payload.get("training") or {})


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint written by :func:`save_checkpoint`. Raises ``ValueError`` for a
    file that is not one (wrong format tag or missing keys)."""
    path = Path(path)
    payload = _payload(path)
    spec = NetworkSpec.from_dict(payload["spec"])
    network = build_network(spec)
    network.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()})
    network.eval()
    landmarks = NyulLandmarks.from_dict(payload["landmarks"]) if payload.get("landmarks") else None
    return Checkpoint(network=network, spec=spec, version=str(payload["version"]), landmarks=landmarks,
                      roi_size=tuple(int(v) for v in payload["roi_size"]),  # type: ignore[arg-type]
                      spacing_mm=float(payload.get("spacing_mm", 1.0)),  # files from before it was recorded: 1 mm
                      training=dict(payload.get("training") or {}), path=path)
