"""The voxel classifier next to the network: features (MONAI dictionary transforms on the
preprocessing's grid), one or two stages of gradient-boosted trees, the fusion with the network's
region probabilities and the FLAIR floor, and how it is trained (:mod:`lib.classifier.fit`).

The served model is a checkpoint holding both (``lib.model.checkpoint``); see docs/model-card.md.
"""

from .features import FEATURES_VERSION, flair_floor_mask, midline_vox, mirror
from .model import FUSION, ONE_STAGE, TWO_STAGE, VARIANTS, Thresholds, VoxelClassifier

__all__ = ["FEATURES_VERSION", "flair_floor_mask", "midline_vox", "mirror", "FUSION", "ONE_STAGE", "TWO_STAGE",
           "VARIANTS", "Thresholds", "VoxelClassifier"]
