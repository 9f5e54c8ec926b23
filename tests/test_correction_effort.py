"""Correction effort: Dice and surface Dice per nested region between the model output and the
final label, on analytic spheres; and the table and its per-model summary from a real server,
after a model output was corrected on one study and accepted unchanged on another."""

from __future__ import annotations

import numpy as np
import pytest
import requests
import SimpleITK as sitk
from monailabel.client import MONAILabelClient

from lib.activelearning.effort import compare, surface_dice
from lib.errors import InvalidGeometryError

from _cases import make_studies, write_label_like
from _server import monailabel_server

MODEL = "brats_segresnet"


def _sphere(shape, centre, radius_mm, spacing):
    index = np.moveaxis(np.indices(shape), 0, -1) * np.asarray(spacing)
    return np.linalg.norm(index - np.asarray(centre), axis=-1) <= radius_mm


def test_a_border_moved_less_than_the_tolerance_keeps_surface_dice_at_one():
    spacing = (2.0, 1.0, 1.0)  # z, y, x: anisotropic
    a = _sphere((30, 60, 60), (30, 30, 30), 12.0, spacing)
    near = _sphere((30, 60, 60), (30, 30, 31), 12.0, spacing)  # 1 mm off
    far = _sphere((30, 60, 60), (30, 30, 36), 12.0, spacing)  # 6 mm off
    assert surface_dice(a, near, spacing) == pytest.approx(1.0)
    assert surface_dice(a, far, spacing) < 0.5
    assert surface_dice(a, a & False, spacing) == 0.0 and surface_dice(a & False, a & False, spacing) == 1.0


def test_compare_scores_nested_regions_and_counts_changed_voxels():
    spacing = (1.0, 1.0, 1.0)
    original = np.zeros((40, 40, 40), np.uint8)
    original[_sphere(original.shape, (20, 20, 20), 12, spacing)] = 2
    original[_sphere(original.shape, (20, 20, 20), 6, spacing)] = 3
    final = original.copy()
    final[final == 3] = 1  # the clinician: that core does not enhance
    result = compare(sitk.GetImageFromArray(original), sitk.GetImageFromArray(final))
    assert result["dice"]["WT"] == 1.0 and result["dice"]["TC"] == 1.0 and result["dice"]["ET"] == 0.0
    assert result["voxels_changed"] == int((original == 3).sum())
    assert result["volume_change_ml"]["ET"] == pytest.approx(-(original == 3).sum() / 1000.0)
    moved = sitk.GetImageFromArray(final)
    moved.SetOrigin((5.0, 0.0, 0.0))
    with pytest.raises(InvalidGeometryError):
        compare(sitk.GetImageFromArray(original), moved)


def test_the_server_reports_effort_per_model_version(tmp_path_factory, tmp_path):
    root = tmp_path_factory.mktemp("studies")
    corrected, accepted = make_studies(root, 2, seed=83)
    with monailabel_server(root, tmp_path / "server.log") as url:
        client = MONAILabelClient(url, tmpdir=str(tmp_path))
        outputs = {study: client.infer(MODEL, study, {}) for study in (corrected, accepted)}
        version = outputs[corrected][1]["model_version"]
        fixed = write_label_like(outputs[corrected][0], tmp_path / "fixed.nii.gz", fill=2)
        client.save_label(corrected, str(fixed), tag="final",
                          params={"model_version": version, "seconds_since_segmentation": 95.0})
        client.save_label(accepted, outputs[accepted][0], tag="final", params={"model_version": version})
        answer = requests.get(f"{url}/btl/effort", timeout=120)
    assert answer.status_code == 200, answer.text
    rows = {row["study"]: row for row in answer.json()["rows"]}
    assert rows[accepted]["unchanged"] and rows[accepted]["dice"]["WT"] == 1.0
    assert not rows[corrected]["unchanged"] and rows[corrected]["dice"]["WT"] < 1.0
    assert rows[corrected]["seconds"] == 95.0 and rows[accepted]["seconds"] is None
    summary = answer.json()["by_model_version"][version]
    assert summary["corrections"] == 2 and summary["accepted_unchanged"] == 0.5
