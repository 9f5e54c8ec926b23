"""Image embedding of a study from the served network's encoder.

The network's encoder runs once over the whole preprocessed case (what the network sees: the
four z-scored sequences on the working grid); its deepest feature maps are averaged over three
regions: inside the tumor, a shell of ``SHELL_MM`` around it (inside the brain), and the whole
brain. The tumor and shell averages are taken *relative to the brain's* (their difference from
it), so that what stays is how the tumor differs from this patient's own brain, and not the
scanner's or the site's look; the brain average itself is kept as a third part (the same
subject scanned again at the same site looks alike there). Each part is scaled to unit length
and the three are concatenated and divided by sqrt(3): the cosine of two embeddings is the
mean of the cosines of their parts.

The encoder is reached through :func:`encoder_of`, which takes the served network and returns
a :class:`FeatureEncoder`: a model whose network is not a SegResNet plugs in there. The
embedding records the model version that made it: embeddings of two model versions are never
compared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from lib.errors import ModelUnavailableError

#: The shell around the tumor whose features are the second part (mm).
SHELL_MM = 10.0
#: Encoder levels pooled, counted from the deepest (1: the bottleneck alone).
LEVELS = 2


class FeatureEncoder(Protocol):
    """Feature maps of a preprocessed case: (1, 4, X, Y, Z) in, a list of (1, C, x, y, z)
    maps out, the deepest last."""

    def __call__(self, image: torch.Tensor) -> list[torch.Tensor]: ...


def _segresnet_encoder(network: torch.nn.Module) -> FeatureEncoder:
    encode: Callable[[torch.Tensor], tuple[torch.Tensor, list[torch.Tensor]]] = network.encode  # type: ignore

    def features(image: torch.Tensor) -> list[torch.Tensor]:
        _, levels = encode(image)
        return list(levels)
    return features


def encoder_of(network: torch.nn.Module) -> FeatureEncoder:
    """The encoder of a served network. A network with MONAI's ``encode`` (SegResNet) gives
    its down-sampling levels; :class:`ModelUnavailableError` for one this module cannot read
    (a new architecture adds its own case here)."""
    if callable(getattr(network, "encode", None)):
        return _segresnet_encoder(network)
    raise ModelUnavailableError(f"no image encoder for a {type(network).__name__} network; "
                                "add one to lib.search.embedding.encoder_of")


@dataclass(frozen=True)
class ImageEmbedding:
    """A unit-length float32 vector and the model version that made it."""

    vector: np.ndarray
    model_version: str


def _pad_to(image: torch.Tensor, divisor: int) -> torch.Tensor:
    pads: list[int] = []
    for size in reversed(image.shape[2:]):
        pads += [0, (-size) % divisor]
    return F.pad(image, pads)


def _region_masks(labels: np.ndarray, brain: np.ndarray, spacing_mm: float) -> list[np.ndarray]:
    """Tumor, shell around it (in the brain, not the tumor) and brain, as float (X, Y, Z) masks."""
    tumor = labels > 0
    shell = ndimage.distance_transform_edt(~tumor, sampling=spacing_mm) <= SHELL_MM if tumor.any() \
        else np.zeros_like(tumor)
    shell &= ~tumor & (brain > 0)
    return [tumor.astype(np.float32), shell.astype(np.float32), (brain > 0).astype(np.float32)]


def _pooled(feature: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mask-weighted mean of a (1, C, x, y, z) map; ``mask`` (1, 1, X, Y, Z) averaged onto its grid."""
    x, y, z = (int(n) for n in feature.shape[2:])
    weights = F.adaptive_avg_pool3d(mask, (x, y, z)) if mask.shape[2:] != feature.shape[2:] else mask
    total = weights.sum()
    if float(total) <= 1e-6:
        return torch.zeros(feature.shape[1])
    return (feature * weights).sum(dim=(0, 2, 3, 4)) / total


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 1e-12 else vector


@torch.no_grad()
def embed(encoder: FeatureEncoder, image: np.ndarray, labels: np.ndarray, brain: np.ndarray,
          spacing_mm: float, size_divisor: int = 8) -> np.ndarray:
    """The embedding (see the module docstring) of a preprocessed case: ``image`` (4, X, Y, Z),
    ``labels`` and ``brain`` (X, Y, Z) on the same working grid of ``spacing_mm``."""
    x = _pad_to(torch.as_tensor(np.asarray(image), dtype=torch.float32)[None], size_divisor)
    maps = encoder(x)[-LEVELS:]
    parts: list[list[np.ndarray]] = [[], [], []]
    for i, region in enumerate(_region_masks(labels, brain, spacing_mm)):
        mask = _pad_to(torch.from_numpy(region)[None, None], size_divisor)
        for feature in maps:
            parts[i].append(_pooled(feature.float(), mask).numpy())
    brain_mean = np.concatenate(parts[2])
    tumor_part = np.concatenate(parts[0]) - brain_mean if labels.any() else np.zeros_like(brain_mean)
    shell_part = np.concatenate(parts[1]) - brain_mean if labels.any() else np.zeros_like(brain_mean)
    vector = np.concatenate([_unit(tumor_part), _unit(shell_part), _unit(brain_mean)]) / np.sqrt(3.0)
    return vector.astype(np.float32)
