"""BraTS conventions: listing a folder of labelled cases, reading labels of older releases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lib.brats import ED, ET, NCR, labelled_cases, read_label


def test_labelled_cases_lists_case_folders_with_their_own_label(tmp_path: Path) -> None:
    for name, label in (("B-2", "B-2-seg.nii.gz"), ("A-1", "A-1-seg.nii"), ("C-3", None), ("D-4", "other-seg.nii.gz"),
                        (".hidden", ".hidden-seg.nii.gz")):
        (tmp_path / name).mkdir()
        if label:
            (tmp_path / name / label).write_bytes(b"")
    (tmp_path / "E-5-seg.nii.gz").write_bytes(b"")  # a file, not a case folder
    assert labelled_cases(tmp_path) == [
        {"case_id": "A-1", "image": str(tmp_path / "A-1"), "label": str(tmp_path / "A-1" / "A-1-seg.nii")},
        {"case_id": "B-2", "image": str(tmp_path / "B-2"), "label": str(tmp_path / "B-2" / "B-2-seg.nii.gz")},
    ]


def test_a_brats_2021_label_is_read_with_enhancing_tumor_as_3(tmp_path):
    values = np.array([[[0, 1, 2, 4]]], np.uint8)
    image = sitk.GetImageFromArray(values)
    image.SetSpacing((1.0, 1.5, 3.0))
    sitk.WriteImage(image, str(tmp_path / "old-seg.nii.gz"))
    label = read_label(tmp_path / "old-seg.nii.gz")
    assert sitk.GetArrayFromImage(label).tolist() == [[[0, NCR, ED, ET]]]
    assert label.GetSpacing() == (1.0, 1.5, 3.0) and label.GetPixelID() == sitk.sitkUInt8
