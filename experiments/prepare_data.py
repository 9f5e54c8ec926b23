"""Rebuild the data folder the model card's training and evaluation commands read.

Nothing here is stored in the repository; a fresh machine gets it back with this one command
(about 4 min on 2 CPU cores):

    .venv/bin/python experiments/prepare_data.py --out data \\
        --real-git <git dir of patliao/SYSC4907-Glioma-Growth-Visualization> \\
        --extra-git <git dir of indigoYoshimaru/3d-brain-thesis>

(the tool library's ``fetch`` brings both git directories). Folders written under ``--out``:

- ``real``: the eight real labelled cases of ``../shared/real-labelled/`` (its ``extract.sh``,
  SHA256-checked), labels 4 -> 3. They are cross-validated, never a base or validation case.
- ``extra``: six more BraTS 2021 training cases, MIT-licensed copies in
  ``indigoYoshimaru/3d-brain-thesis`` @ 42cda61b (``app/data/sample/``), labels 4 -> 3.
  Only these six are read: the folder's other case is reserved for independent evaluation
  (``../shared/real-labelled/README.md``) and is never extracted.
- ``synth6v2``: 6 generated cases of the calibrated generator (``--seed 1000 --style brats``).
- ``synth-old6``: 6 generated cases of the generator before its contrast was calibrated
  (commit ``e369eb2``, ``--seed 1200 --style mixed --domain-randomization 0.2``): the kind of
  cases the generated-only model bundled until 2026-12-01 was trained on.
- ``heldout``: the 8 generated held-out cases the issue's "not worse than today" figures come
  from (the same old generator, ``--seed 9000 --style mixed``). The generated-only model scores
  them as the model card's table says (same means, every case within 0.01), which checks they
  are the same cases; the old generator runs with today's ``lib`` (resampling, file I/O), so
  bit-for-bit identity is not guaranteed.

Cases already present are kept (synthbrats skips them; a real or extra case is extracted again
unless all five of its files are there).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lib.atomic import atomic_path  # noqa: E402
from lib.brats import LEGACY_ET, read_label  # noqa: E402

SHARED = REPO.parent / "shared"

EXTRA_COMMIT = "42cda61b2e37b01722f518e71770de3b38683c84"
EXTRA_CASES = ("00000", "00002", "00014", "00019", "00024", "00031")  # never the folder's reserved case
# BraTS 2021 file suffixes -> this project's (BraTS 2023) sequence names
SUFFIXES = {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f", "seg": "seg"}
# the last commit of the generator before its tumor contrast was calibrated on real cases
# (the calibration is commit 91ccd62)
OLD_GENERATOR_COMMIT = "e369eb2"
CALIBRATED = ("synth6v2", ["--cases", "6", "--seed", "1000", "--style", "brats"])
OLD_GENERATED = {
    "synth-old6": ["--cases", "6", "--seed", "1200", "--style", "mixed", "--domain-randomization", "0.2"],
    "heldout": ["--cases", "8", "--seed", "9000", "--style", "mixed"],
}


def relabel_legacy_enhancing(folder: Path) -> None:
    """Labels 1/2/4 (BraTS up to 2021) -> 1/2/3, in place (:func:`lib.brats.read_label`); files
    already 1/2/3 are left untouched, so the training cache (keyed by file times) stays valid."""
    for path in sorted(folder.glob("*/*-seg.nii.gz")):
        image = sitk.ReadImage(str(path))  # kept alive: an array view does not hold its image
        if LEGACY_ET not in np.unique(sitk.GetArrayViewFromImage(image)):
            continue
        with atomic_path(path, suffix=".nii.gz") as tmp:
            sitk.WriteImage(read_label(path), str(tmp), useCompression=True)


def extract_extra(git_dir: Path, out: Path) -> None:
    for n in EXTRA_CASES:
        case_id = f"BraTS2021-{n}"
        (out / case_id).mkdir(parents=True, exist_ok=True)
        for theirs, ours in SUFFIXES.items():
            blob = f"{EXTRA_COMMIT}:app/data/sample/BraTS2021_{n}/BraTS2021_{n}_{theirs}.nii.gz"
            data = subprocess.run(["git", "--git-dir", str(git_dir), "show", blob],
                                  check=True, capture_output=True).stdout
            (out / case_id / f"{case_id}-{ours}.nii.gz").write_bytes(data)


def complete(folder: Path, cases: int) -> bool:
    """``cases`` case folders, each with its four sequences and label (an interrupted extraction
    leaves a folder with fewer)."""
    if not folder.is_dir():
        return False
    full = [p for p in folder.iterdir() if p.is_dir() and len(list(p.glob("*.nii.gz"))) == len(SUFFIXES)]
    return len(full) >= cases


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--real-git", type=Path, required=True,
                    help="git dir of patliao/SYSC4907-Glioma-Growth-Visualization")
    ap.add_argument("--extra-git", type=Path, required=True, help="git dir of indigoYoshimaru/3d-brain-thesis")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    if not complete(args.out / "real", 8):
        subprocess.run([str(SHARED / "real-labelled" / "extract.sh"), str(args.real_git), str(args.out / "real")],
                       check=True)
    relabel_legacy_enhancing(args.out / "real")
    if not complete(args.out / "extra", len(EXTRA_CASES)):
        extract_extra(args.extra_git, args.out / "extra")
    relabel_legacy_enhancing(args.out / "extra")

    synthbrats = [sys.executable, "-m", "synthbrats", "--workers", str(args.workers)]
    name, options = CALIBRATED
    subprocess.run([*synthbrats, *options, "--out", str(args.out / name)], check=True)
    with tempfile.TemporaryDirectory() as old:
        # the old generator's package, exported from git, first on the import path
        archive = subprocess.run(["git", "-C", str(REPO), "archive", OLD_GENERATOR_COMMIT, "sample-data/synthbrats"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", old], input=archive, check=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(Path(old) / "sample-data"), os.environ.get("PYTHONPATH", "")) if p)}
        for name, options in OLD_GENERATED.items():
            subprocess.run([*synthbrats, *options, "--out", str(args.out / name)], check=True, env=env)
    print(f"data ready in {args.out}: " + ", ".join(sorted(p.name for p in args.out.iterdir() if p.is_dir())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
