"""BraTS conventions: listing a folder of labelled cases."""

from __future__ import annotations

from pathlib import Path

from lib.brats import labelled_cases


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
