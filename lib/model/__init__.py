"""The segmentation network: its definition, its checkpoint file, and sliding-window prediction.

Shared by the inference task (``lib/infers``) and the trainer (``lib/trainers``).
"""

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .network import NetworkSpec, build_network
from .predict import PredictionSettings, predict_regions, select_device

__all__ = ["Checkpoint", "load_checkpoint", "save_checkpoint", "NetworkSpec", "build_network",
           "PredictionSettings", "predict_regions", "select_device"]
