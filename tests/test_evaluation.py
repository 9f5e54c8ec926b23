"""Scoring against a reference, on shapes whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from lib.brats import ED, ET, NCR
from lib.evaluation import ENHANCING_MIN_ML, case_metrics, hausdorff95_mm, region_dice


def _ball(shape, centre, radius_vox) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    return ((grid - np.asarray(centre, float).reshape(3, 1, 1, 1)) ** 2).sum(0) <= radius_vox ** 2


def test_concentric_spheres_are_apart_by_the_difference_of_their_radii_in_mm():
    small, large = _ball((60, 60, 60), (30, 30, 30), 10), _ball((60, 60, 60), (30, 30, 30), 14)
    assert hausdorff95_mm(small, large, (1.0, 1.0, 1.0)) == pytest.approx(4.0, abs=1.0)
    assert hausdorff95_mm(small, large, (2.0, 2.0, 2.0)) == pytest.approx(8.0, abs=2.0)
    assert hausdorff95_mm(small, np.zeros_like(small), (1.0, 1.0, 1.0)) is None


def test_regions_not_label_values_are_compared():
    truth = np.zeros((20, 20, 20), np.uint8)
    truth[5:15, 5:15, 5:15] = ED
    truth[8:12, 8:12, 8:12] = ET
    pred = truth.copy()
    pred[pred == ET] = NCR  # right tumor core, wrong about enhancement
    dice = region_dice(pred, truth)
    assert (dice["WT"], dice["TC"], dice["ET"]) == (1.0, 1.0, 0.0)


def test_volumes_false_lesions_and_the_enhancement_rule():
    truth = np.zeros((40, 40, 40), np.uint8)
    truth[10:20, 10:20, 10:20] = ED          # 1000 voxels of 2 mm: 8 mL
    pred = truth.copy()
    pred[30:35, 30:35, 30:35] = ED           # a separate false lesion: 125 voxels, 1 mL
    pred[12:14, 12:14, 12:14] = ET           # 8 voxels, 0.064 mL of ET: below the rule's minimum
    metrics = case_metrics(pred, truth, (2.0, 2.0, 2.0))
    assert metrics["true_ml"]["WT"] == 8.0 and metrics["predicted_ml"]["WT"] == 9.0
    assert metrics["false_lesions_ml"] == 1.0 and metrics["wt_outside_ml"] == 1.0
    assert not metrics["enhancing"] and metrics["predicted_ml"]["ET"] < ENHANCING_MIN_ML
    assert metrics["et_score"] == 1.0  # no enhancement, none predicted
    pred[12:20, 12:20, 12:20] = ET           # 512 voxels: 4 mL of enhancement that is not there
    assert case_metrics(pred, truth, (2.0, 2.0, 2.0))["et_score"] == 0.0
