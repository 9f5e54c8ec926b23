"""Generated four-sequence cases for the datastore, model and server tests (built on the fly)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from synthbrats import GeneratorConfig, generate_case, write_case

#: 2 mm co-registered cases: about a second each, enough for datastore and training tests.
FAST = GeneratorConfig(spacing=2.0, style="brats", kind="glioblastoma")


def make_studies(folder: Path, n: int, seed: int = 41, config: GeneratorConfig = FAST) -> list[str]:
    """Write ``n`` generated case folders under ``folder``; returns their ids."""
    return [write_case(generate_case(seed, i, config), folder).name for i in range(n)]


def copy_studies(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def t1c_path(study: Path) -> Path:
    return next(study.glob("*-t1c.nii.gz"))


def truth_path(study: Path) -> Path:
    return next(study.glob("*-seg.nii.gz"))


def write_label_like(reference: Path, out: Path, values: np.ndarray | None = None, fill: int | None = None) -> Path:
    """A label on the grid of ``reference``: ``values`` (Z, Y, X) or a constant ``fill``."""
    ref = sitk.ReadImage(str(reference))
    arr = values if values is not None else np.full(sitk.GetArrayViewFromImage(ref).shape, fill or 0, np.uint8)
    img = sitk.GetImageFromArray(arr.astype(np.uint8))
    img.CopyInformation(ref)
    sitk.WriteImage(img, str(out))
    return out

