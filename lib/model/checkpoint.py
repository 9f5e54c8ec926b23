"""Checkpoint file: weights plus everything inference needs to reproduce training's conditions.

One ``.pt`` file holds the network spec, the weights (float16 to keep the file small), the
preprocessing the model was trained with (working resolution, N4 or not, Nyúl landmarks), the
sliding-window size, the model version and the training record; a served model may also hold a
voxel classifier (:class:`lib.classifier.VoxelClassifier`: its trees, features' version and
thresholds), which then makes the labels from the network's region probabilities and its own
features (:meth:`Checkpoint.region_probabilities`). Files are written atomically, so a reader
never sees half a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import Compose

from lib.atomic import atomic_path
from lib.classifier.model import VoxelClassifier
from lib.postprocessing import postprocess
from lib.transforms import NyulLandmarks, build_preprocessing

from .network import NetworkSpec, build_network
from .predict import PredictionSettings, predict_regions

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
    n4: bool = False
    training: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    classifier: VoxelClassifier | None = None

    @property
    def description(self) -> str:
        """What the model is, in a few words (the infer task's description, the benchmarks)."""
        network = f"SegResNet {self.spec.init_filters} filters at {self.spacing_mm:g} mm"
        if self.classifier is None:
            return network
        return f"voxel classifier ({self.classifier.variant}, {len(self.classifier.stages)} stage(s)) with {network}"

    def region_probabilities(self, data: dict[Any, Any], settings: PredictionSettings) -> np.ndarray:
        """Region probabilities float32 (3, X, Y, Z) (WT, TC, ET) of a case preprocessed by
        :meth:`preprocessing` (``image`` (4, X, Y, Z), ``brain_mask`` (1, X, Y, Z)): the network's
        (``settings``: window, flips, device), or, with a classifier, the classifier's (which reads
        the network's when it is a fusion)."""
        if self.classifier is not None and not self.classifier.uses_network:
            return self.classifier.region_probabilities(data)
        cnn = predict_regions(self.network, data["image"], settings)
        return cnn if self.classifier is None else self.classifier.region_probabilities(data, cnn)

    def labels(self, regions: np.ndarray, data: dict[Any, Any]) -> np.ndarray:
        """The served postprocessing of :meth:`region_probabilities`: uint8 labels (X, Y, Z) on the
        working grid (the classifier's thresholds, else :func:`lib.postprocessing.postprocess`)."""
        if self.classifier is not None:
            return self.classifier.labels(regions, data["image"], data["brain_mask"])
        return postprocess(regions, (self.spacing_mm,) * 3, data["image"], data["brain_mask"])

    def preprocessing(self, with_label: bool = False) -> Compose:
        """The preprocessing this model was trained with (:func:`lib.transforms.build_preprocessing`
        at its working resolution, with its N4 setting and Nyúl landmarks, z-scored)."""
        return build_preprocessing(landmarks=self.landmarks, n4=self.n4, with_label=with_label,
                                   spacing=self.spacing_mm)


def save_checkpoint(path: str | Path, network: torch.nn.Module, spec: NetworkSpec, *, version: str,
                    landmarks: NyulLandmarks | None, roi_size: tuple[int, int, int], spacing_mm: float,
                    n4: bool, training: dict[str, Any] | None = None,
                    classifier: VoxelClassifier | None = None) -> Path:
    """Write a checkpoint atomically at ``path`` (replacing an older file in one step).
    ``spacing_mm``: the isotropic working resolution the network sees (preprocessing
    resamples to it); ``n4``: whether preprocessing corrects the bias field before Nyúl;
    ``roi_size``: the sliding window in voxels at that resolution; ``classifier``: the voxel
    classifier that makes the labels (None: the network alone), at the same resolution."""
    if classifier is not None and abs(classifier.spacing_mm - spacing_mm) > 1e-6:
        raise ValueError(f"the classifier works at {classifier.spacing_mm} mm, the network at {spacing_mm} mm")
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
        "n4": bool(n4),
        "training": training or {},
        "classifier": classifier.to_dict() if classifier is not None else None,
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


def read_checkpoint_n4(path: str | Path) -> bool:
    """Whether a checkpoint's preprocessing corrects the bias field (N4), without building its
    network. Raises ``ValueError`` for a file that is not a checkpoint."""
    return bool(_payload(Path(path)).get("n4", False))


def read_checkpoint_has_classifier(path: str | Path) -> bool:
    """Whether a checkpoint holds a voxel classifier, without building its network."""
    return bool(_payload(Path(path)).get("classifier"))


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
                      n4=bool(payload.get("n4", False)),  # files from before N4 was an option: without
                      training=dict(payload.get("training") or {}), path=path,
                      classifier=VoxelClassifier.from_dict(payload["classifier"]) if payload.get("classifier")
                      else None)


def with_classifier(checkpoint: Checkpoint, classifier: VoxelClassifier | None, out: str | Path, *, version: str,
                    training: dict[str, Any] | None = None) -> Path:
    """Write ``checkpoint``'s network and preprocessing with ``classifier`` (None: without one) as a
    new checkpoint at ``out``, with ``version`` and ``training`` (default: the checkpoint's)."""
    return save_checkpoint(out, checkpoint.network, checkpoint.spec, version=version, landmarks=checkpoint.landmarks,
                           roi_size=checkpoint.roi_size, spacing_mm=checkpoint.spacing_mm, n4=checkpoint.n4,
                           training=checkpoint.training if training is None else training, classifier=classifier)


def interpolate_checkpoints(pretrained: str | Path, fine_tuned: str | Path, fine_tuned_weight: float,
                            out: str | Path) -> Path:
    """Write the weight-space interpolation ``w * fine_tuned + (1 - w) * pretrained`` at ``out``
    (``w`` = ``fine_tuned_weight`` in [0, 1]): the fine-tuned model pulled back toward the model it
    was fine-tuned from, which keeps more of what that model knew about its own data (robust
    fine-tuning by weight-space ensembling, Wortsman et al., CVPR 2022).

    Both files must hold the same network (spec), working resolution, window and N4 setting;
    the result keeps the fine-tuned model's preprocessing (its Nyúl landmarks: a fine-tune
    inherits its init's, so both models saw the same normalisation; the landmarks are not
    compared) and records both versions and the weight in its training record. Raises
    ``ValueError`` otherwise."""
    if not 0.0 <= fine_tuned_weight <= 1.0:
        raise ValueError(f"fine_tuned_weight must be in [0, 1], got {fine_tuned_weight}")
    base, tuned = load_checkpoint(pretrained), load_checkpoint(fine_tuned)
    for key in ("spec", "roi_size", "spacing_mm", "n4"):
        if getattr(base, key) != getattr(tuned, key):
            raise ValueError(f"{pretrained} and {fine_tuned} differ in {key}: "
                             f"{getattr(base, key)} != {getattr(tuned, key)}")
    base_weights, tuned_weights = base.network.state_dict(), tuned.network.state_dict()
    w = float(fine_tuned_weight)
    tuned.network.load_state_dict({
        k: (w * v + (1.0 - w) * base_weights[k]) if v.is_floating_point() else v for k, v in tuned_weights.items()})
    training = {**tuned.training, "interpolation": {"pretrained": base.version, "fine_tuned": tuned.version,
                                                    "fine_tuned_weight": w}}
    return save_checkpoint(out, tuned.network, tuned.spec, version=f"{tuned.version}-wise{w:g}",
                           landmarks=tuned.landmarks, roi_size=tuned.roi_size, spacing_mm=tuned.spacing_mm,
                           n4=tuned.n4, training=training)
