"""Network definition: a MONAI SegResNet predicting the three BraTS regions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from monai.networks.nets import SegResNet

from lib.brats import SEQUENCES
from lib.postprocessing.regions import REGION_ORDER


@dataclass(frozen=True)
class NetworkSpec:
    """Hyper-parameters that define the network's shape (stored in every checkpoint).

    Input: (B, 4, X, Y, Z) z-scored sequences in ``SEQUENCES`` order; output: (B, 3, X, Y, Z)
    logits of the regions in ``REGION_ORDER`` (WT, TC, ET). X, Y, Z must be multiples of
    ``2 ** (len(blocks_down) - 1)``.
    """

    init_filters: int = 8
    blocks_down: tuple[int, ...] = (1, 2, 2, 4)
    blocks_up: tuple[int, ...] = (1, 1, 1)
    dropout: float = 0.1
    in_channels: int = len(SEQUENCES)
    out_channels: int = len(REGION_ORDER)
    architecture: str = field(default="SegResNet")

    @property
    def size_divisor(self) -> int:
        return 2 ** (len(self.blocks_down) - 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> NetworkSpec:
        known = {k: v for k, v in obj.items() if k in cls.__dataclass_fields__}
        for key in ("blocks_down", "blocks_up"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)


def build_network(spec: NetworkSpec) -> torch.nn.Module:
    """A freshly initialised network for ``spec``."""
    if spec.architecture != "SegResNet":
        raise ValueError(f"unknown architecture '{spec.architecture}'")
    return SegResNet(spatial_dims=3, in_channels=spec.in_channels, out_channels=spec.out_channels,
                     init_filters=spec.init_filters, blocks_down=spec.blocks_down, blocks_up=spec.blocks_up,
                     dropout_prob=spec.dropout)
