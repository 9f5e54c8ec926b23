"""Preprocessing and harmonisation transforms shared by training and inference.

Build the pipeline with :func:`build_preprocessing`; map predictions back with
:func:`restore_label` / :class:`RestoreLabeld`.
"""

from ._common import RAS_DIRECTION, CaseGeometry, Grid, array_xyz, image_from_xyz
from .brainmask import BrainMaskd, CropToMaskd, bounding_box, brain_mask, head_mask, is_skull_stripped
from .geometry import (
    CoRegisterd,
    RegistrationResult,
    ReorientToRASd,
    ResampleToRASGridd,
    StackSequencesd,
    physical_overlap,
    ras_grid_covering,
    register_rigid,
    reorient_to_ras,
    resample_image,
    resample_label,
)
from .harmonization import (
    DEFAULT_PERCENTILES,
    LANDMARKS_FILENAME,
    N4BiasCorrectiond,
    NyulLandmarks,
    NyulStandardized,
    ZScoreNormalized,
    landmarks_path_for_model,
    n4_bias_correct,
    zscore,
)
from .inverse import RestoreLabeld, restore_label, uncrop
from .io import CaseFiles, LoadCased, find_case_files, load_case, read_image, write_image_atomic
from .pipeline import build_preprocessing, learn_landmarks

__all__ = [
    "RAS_DIRECTION", "CaseGeometry", "Grid", "array_xyz", "image_from_xyz",
    "BrainMaskd", "CropToMaskd", "bounding_box", "brain_mask", "head_mask", "is_skull_stripped",
    "CoRegisterd", "RegistrationResult", "ReorientToRASd", "ResampleToRASGridd", "StackSequencesd",
    "physical_overlap", "ras_grid_covering", "register_rigid", "reorient_to_ras", "resample_image",
    "resample_label",
    "DEFAULT_PERCENTILES", "LANDMARKS_FILENAME", "N4BiasCorrectiond", "NyulLandmarks", "NyulStandardized",
    "ZScoreNormalized", "landmarks_path_for_model", "n4_bias_correct", "zscore",
    "RestoreLabeld", "restore_label", "uncrop",
    "CaseFiles", "LoadCased", "find_case_files", "load_case", "read_image", "write_image_atomic",
    "build_preprocessing", "learn_landmarks",
]
