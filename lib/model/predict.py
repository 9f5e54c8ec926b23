"""Sliding-window prediction of region probabilities on a preprocessed case."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from monai.inferers import sliding_window_inference


@dataclass(frozen=True)
class PredictionSettings:
    """How to run the network over a whole case.

    ``roi_size`` (voxels of the working grid) is the sliding window; ``overlap`` its fractional overlap;
    ``mirror_axes`` adds test-time flips along those spatial axes (0=X, 1=Y, 2=Z) and
    averages them (each axis doubles the cost); ``device`` is "auto" (CUDA when present),
    "cuda" or "cpu"; ``mixed_precision`` uses float16 on CUDA and bfloat16 on a CPU that
    computes it natively (see :func:`reduced_precision`).
    """

    roi_size: tuple[int, int, int] = (128, 128, 128)
    overlap: float = 0.25
    sw_batch_size: int = 1
    mirror_axes: tuple[int, ...] = ()
    device: str = "auto"
    mixed_precision: bool = True


def select_device(device: str = "auto") -> torch.device:
    """"auto" -> CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX). Without it PyTorch
    emulates bfloat16, 30 to 90 times slower than float32 (measured on an AVX2 AMD EPYC)."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(check()) for check in checks if check is not None)


def reduced_precision(device: torch.device) -> torch.dtype | None:
    """The dtype mixed precision uses on ``device``: float16 on CUDA, bfloat16 on a CPU that
    has it natively, None (stay in float32) on any other CPU."""
    if device.type == "cuda":
        return torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else None


def autocast(device: torch.device, enabled: bool) -> torch.autocast:
    """Mixed precision on ``device`` when ``enabled`` and the device computes it fast."""
    dtype = reduced_precision(device) if enabled else None
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


@torch.no_grad()
def predict_regions(network: torch.nn.Module, image: np.ndarray | torch.Tensor,
                    settings: PredictionSettings) -> np.ndarray:
    """Region probabilities for one preprocessed case.

    ``image``: (4, X, Y, Z) float32, z-scored, on the RAS working grid (output of ``build_preprocessing``).
    Returns float32 (3, X, Y, Z) sigmoid probabilities of WT, TC, ET on the same grid.
    """
    device = select_device(settings.device)
    # channels-last 3D: oneDNN's convolutions run about 10% faster on CPU this way (measured)
    network = network.to(device, memory_format=torch.channels_last_3d).eval()  # type: ignore[call-overload]
    x = torch.as_tensor(np.asarray(image), dtype=torch.float32)[None].to(device)
    x = x.contiguous(memory_format=torch.channels_last_3d)
    # the window may not be larger than the padded case: shrink it to what the case needs
    roi = tuple(min(r, max(16, int(np.ceil(s / 16) * 16))) for r, s in zip(settings.roi_size, x.shape[2:], strict=True))
    flips: list[tuple[int, ...]] = [()] + [(axis + 2,) for axis in settings.mirror_axes]
    total: torch.Tensor | None = None
    with autocast(device, settings.mixed_precision):
        for dims in flips:
            xi = torch.flip(x, dims) if dims else x
            logits = sliding_window_inference(xi, roi, settings.sw_batch_size, network,
                                              overlap=settings.overlap, mode="gaussian")
            assert isinstance(logits, torch.Tensor)  # one output head
            probs = torch.sigmoid(logits.float())
            probs = torch.flip(probs, dims) if dims else probs
            total = probs if total is None else total + probs
    assert total is not None
    return (total / len(flips))[0].cpu().numpy().astype(np.float32)
