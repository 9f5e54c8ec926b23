"""Preprocessing and harmonisation transforms shared by training and inference.

Build the pipeline with :func:`build_preprocessing`; map a prediction back onto the input's
t1c grid with :func:`restore_label`. The MONAI dictionary transforms the pipeline is made of
are exported for composing other pipelines; helpers are imported from their modules.
"""

from ._common import RAS_DIRECTION, CaseGeometry, Grid, array_xyz, image_from_xyz
from .brainmask import BrainMaskd, CropToMaskd, bounding_box, brain_mask
from .geometry import (
    CoRegisterd,
    ReorientToRASd,
    ResampleToRASGridd,
    StackSequencesd,
    register_rigid,
    reorient_to_ras,
    resample_label,
)
from .harmonization import (
    N4BiasCorrectiond,
    NyulLandmarks,
    NyulStandardized,
    ZScoreNormalized,
    n4_bias_correct,
    n4_bias_correct_channels,
    zscore,
)
from .inverse import restore_label
from .io import LoadCased, find_case_files, read_image
from .pipeline import build_preprocessing, learn_landmarks

__all__ = [
    "RAS_DIRECTION", "CaseGeometry", "Grid", "array_xyz", "image_from_xyz",
    "BrainMaskd", "CropToMaskd", "bounding_box", "brain_mask",
    "CoRegisterd", "ReorientToRASd", "ResampleToRASGridd", "StackSequencesd", "register_rigid", "reorient_to_ras",
    "resample_label",
    "N4BiasCorrectiond", "NyulLandmarks", "NyulStandardized", "ZScoreNormalized", "n4_bias_correct",
    "n4_bias_correct_channels", "zscore",
    "restore_label",
    "LoadCased", "find_case_files", "read_image",
    "build_preprocessing", "learn_landmarks",
]
