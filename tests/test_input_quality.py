"""Input quality: a sequence without signal over part of the brain is measured and reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lib.brats import sequence_filename
from lib.infers.pipeline import TumorSegmenter
from lib.transforms.quality import DROPOUT_NOTE_FRACTION, signal_dropout

from _cases import make_studies

BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "monailabel_app" / "model" / "brats_segresnet.pt"


def test_signal_dropout_counts_one_black_sequence_inside_the_brain_not_its_rim():
    rng = np.random.default_rng(0)
    image = rng.uniform(50, 150, size=(4, 20, 20, 20)).astype(np.float32)
    brain = np.zeros((20, 20, 20), bool)
    brain[2:18, 2:18, 2:18] = True  # 4096 voxels; at 2 mm the outer 2 voxels are the 4 mm rim
    image[0, 6:10, 6:16, 6:16] = 1.0  # t1n black deep inside: 400 voxels
    image[1, 2:4, 2:18, 2:18] = 0.0  # t1c black in the rim only (a tighter skull-strip)
    image[:, 12:14, 6:8, 6:8] = 0.0  # black on every sequence: no tissue shown, not a dropout
    shares = signal_dropout(image, brain, spacing_mm=2.0)
    assert shares["t1n"] == 400 / 4096
    assert shares["t1c"] == shares["t2w"] == shares["t2f"] == 0.0
    assert signal_dropout(image, np.zeros_like(brain), spacing_mm=2.0) == dict.fromkeys(shares, 0.0)


def test_a_series_black_over_part_of_the_brain_is_named_in_the_result_notes(tmp_path):
    case_id = make_studies(tmp_path, 1, seed=61)[0]
    segmenter = TumorSegmenter([BUNDLED_MODEL])
    clean = segmenter.segment(str(tmp_path / case_id), case_id)
    assert not any("no signal" in note for note in clean.notes), clean.notes

    t1n_path = tmp_path / case_id / sequence_filename(case_id, "t1n")
    t1n = sitk.ReadImage(str(t1n_path))
    voxels = sitk.GetArrayFromImage(t1n)  # (z, y, x)
    brain_x = np.flatnonzero(voxels.any(axis=(0, 1)))
    voxels[:, :, brain_x[0]:brain_x[0] + len(brain_x) // 5] = 0  # a failed coil element: one side black
    damaged = sitk.GetImageFromArray(voxels)
    damaged.CopyInformation(t1n)
    sitk.WriteImage(damaged, str(t1n_path))

    result = segmenter.segment(str(tmp_path / case_id), case_id)
    dropout_notes = [note for note in result.notes if "no signal" in note]
    assert len(dropout_notes) == 1 and dropout_notes[0].startswith("t1n has almost no signal over"), result.notes
    share = float(dropout_notes[0].split(" over ")[1].split(" %")[0]) / 100
    assert DROPOUT_NOTE_FRACTION < share < 0.3
