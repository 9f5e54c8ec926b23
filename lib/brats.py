"""BraTS 2023 conventions shared by every stage: sequence names, label values, regions.

Channel order everywhere in this project is ``SEQUENCES``: a 4-channel image has
t1n at channel 0, t1c at 1, t2w at 2 and t2f at 3.
"""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

#: BraTS 2023 sequence suffixes: native T1, T1 post-contrast, T2, T2-FLAIR.
SEQUENCES: tuple[str, ...] = ("t1n", "t1c", "t2w", "t2f")

#: The sequence whose grid is the reference: the others are registered onto it and
#: predicted labels are returned on it.
REFERENCE_SEQUENCE = "t1c"

#: Label values of a segmentation (0 is background).
NCR, ED, ET = 1, 2, 3
LABEL_NAMES: dict[int, str] = {NCR: "NCR", ED: "ED", ET: "ET"}
LABEL_DESCRIPTIONS: dict[int, str] = {
    NCR: "necrotic / non-enhancing tumor core",
    ED: "peritumoral edema",
    ET: "enhancing tumor",
}

#: The enhancing-tumor value of BraTS releases up to 2021 (ET is 3 since 2023).
LEGACY_ET = 4

#: Evaluated regions: whole tumor, tumor core, enhancing tumor.
REGIONS: dict[str, tuple[int, ...]] = {"WT": (NCR, ED, ET), "TC": (NCR, ET), "ET": (ET,)}


def sequence_filename(case_id: str, sequence: str, suffix: str = ".nii.gz") -> str:
    """File name of one sequence of a case in BraTS naming: ``<case>-<sequence>.nii.gz``."""
    return f"{case_id}-{sequence}{suffix}"


def read_label(path: str | Path) -> sitk.Image:
    """A BraTS segmentation file as uint8 with this project's values: the enhancing tumor of
    releases up to 2021 (:data:`LEGACY_ET`) is read as :data:`ET`; geometry kept."""
    return sitk.ChangeLabel(sitk.ReadImage(str(path), sitk.sitkUInt8), {LEGACY_ET: ET})


def label_filename(case_id: str, suffix: str = ".nii.gz") -> str:
    """File name of a case's segmentation in BraTS naming: ``<case>-seg.nii.gz``."""
    return f"{case_id}-seg{suffix}"


def labelled_cases(folder: str | Path) -> list[dict[str, str]]:
    """``{"case_id", "image", "label"}`` for every case folder under ``folder`` (sorted by name)
    that holds its label in BraTS naming (``<case>-seg.nii.gz`` or ``.nii``); the other folders
    are skipped."""
    cases = []
    for case_dir in sorted(p for p in Path(folder).iterdir() if p.is_dir() and not p.name.startswith(".")):
        labels = sorted(case_dir.glob(f"{label_filename(case_dir.name, '')}.nii*"))
        if labels:
            cases.append({"case_id": case_dir.name, "image": str(case_dir), "label": str(labels[0])})
    return cases
