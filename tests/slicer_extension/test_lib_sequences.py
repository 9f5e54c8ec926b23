"""Volumes already in the scene assigned to t1n, t1c, t2w, t2f by their names."""

from __future__ import annotations

import pytest

from BrainTumorLabelLib.sequences import DEFAULT_PATTERNS, assign, format_patterns, parse_patterns

NAMINGS = [
    # BraTS file names as loaded
    (["BraTS-GLI-00001-000-t1n", "BraTS-GLI-00001-000-t1c", "BraTS-GLI-00001-000-t2w", "BraTS-GLI-00001-000-t2f"],
     {"t1n": 0, "t1c": 1, "t2w": 2, "t2f": 3}),
    # BraTS 2021 names
    (["BraTS2021_01476_flair", "BraTS2021_01476_t1", "BraTS2021_01476_t1ce", "BraTS2021_01476_t2"],
     {"t2f": 0, "t1n": 1, "t1c": 2, "t2w": 3}),
    # series descriptions of a GE study loaded from DICOM
    (["3: AX T2 FLAIR", "5: AX T1 PRE", "8: AX T1 POST GD", "4: AX T2 FSE"], {"t2f": 0, "t1n": 1, "t1c": 2, "t2w": 3}),
    # Siemens
    (["t2_tirm_tra_dark-fluid", "t1_se_tra", "t1_mprage_tra_post", "t2_tse_tra"],
     {"t2f": 0, "t1n": 1, "t1c": 2, "t2w": 3}),
]


@pytest.mark.parametrize("names, expected", NAMINGS, ids=["brats2023", "brats2021", "ge", "siemens"])
def test_common_namings_are_assigned(names, expected):
    found = assign(names)
    assert found.complete and found.volumes == {s: names[i] for s, i in expected.items()}


def test_a_missing_sequence_is_reported_not_guessed():
    found = assign(["AX T1 PRE", "AX T1 POST GD", "AX T2 FSE", "Segmentation"])
    assert found.missing == ("t2f",) and "t2f" not in found.volumes


def test_patterns_are_editable_as_text():
    patterns = parse_patterns("t1c: contrast; t2f: dark")
    assert patterns["t1c"] == ("contrast",) and patterns["t2w"] == DEFAULT_PATTERNS["t2w"]
    assert assign(["T1", "T1 contrast", "T2", "dark"], patterns).volumes == \
        {"t1n": "T1", "t1c": "T1 contrast", "t2w": "T2", "t2f": "dark"}
    assert parse_patterns(format_patterns(DEFAULT_PATTERNS)) == DEFAULT_PATTERNS
    with pytest.raises(ValueError, match="t3x"):
        parse_patterns("t3x: foo")
