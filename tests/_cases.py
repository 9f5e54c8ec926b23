"""Generated four-sequence cases for the datastore, model and server tests (built on the fly).

A case is generated once per ``make test`` for each (seed, index, config): the suite's workers
and the Slicer Lib runs under 3.9 and 3.12 ask for some of the same cases, and generating one
costs seconds of CPU. :func:`write_generated` keeps the first copy in ``build/test-cases/<code>/``
(``<code>``: a hash of the generator's source, so a changed generator never serves an old case)
and copies it where each test wants it. ``make clean`` removes the folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from synthbrats import GeneratorConfig, generate_case, write_case

#: 2 mm co-registered cases: about a second each, enough for datastore and training tests.
FAST = GeneratorConfig(spacing=2.0, style="brats", kind="glioblastoma")


_REPO = Path(__file__).resolve().parents[1]
_GENERATOR = _REPO / "sample-data" / "synthbrats"


def _cache_root() -> Path:
    digest = hashlib.sha256()
    for source in sorted(_GENERATOR.glob("*.py")):
        digest.update(source.name.encode() + source.read_bytes())
    digest.update(f"{np.__version__} {sitk.Version_VersionString()}".encode())
    return _REPO / "build" / "test-cases" / digest.hexdigest()[:16]


def write_generated(seed: int, index: int, config: GeneratorConfig, folder: Path) -> Path:
    """``write_case(generate_case(seed, index, config), folder)``, from the cache when this case was
    generated before in this checkout. Returns the case folder (FileExistsError if it exists)."""
    key = hashlib.sha256(repr((seed, index, config)).encode()).hexdigest()[:16]
    cached = _cache_root() / key
    if not cached.is_dir():
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cached.parent))
        write_case(generate_case(seed, index, config), partial)
        try:
            os.rename(partial, cached)  # atomic: another process may have won the race
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
    (case,) = [p for p in cached.iterdir() if p.is_dir()]
    target = Path(folder) / case.name
    if target.exists():
        raise FileExistsError(f"case folder already exists, not overwritten: {target}")
    Path(folder).mkdir(parents=True, exist_ok=True)
    shutil.copytree(case, target)
    return target


def make_studies(folder: Path, n: int, seed: int = 41, config: GeneratorConfig = FAST) -> list[str]:
    """Write ``n`` generated case folders under ``folder``; returns their ids."""
    return [write_generated(seed, i, config, folder).name for i in range(n)]


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

