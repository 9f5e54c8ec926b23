"""The voxel classifier: trained on generated cases, saved in a checkpoint, loaded and served."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lib.brats import labelled_cases
from lib.classifier import FUSION, ONE_STAGE
from lib.classifier.fit import FitOptions, fit_classifiers, voxel_case
from lib.infers.pipeline import TumorSegmenter
from lib.model import PredictionSettings, load_checkpoint, predict_regions
from lib.model.checkpoint import read_checkpoint_has_classifier, with_classifier

from _cases import make_studies

BUNDLED = Path(__file__).resolve().parents[1] / "monailabel_app" / "model" / "brats_segresnet.pt"
#: a few trees on three small cases: seconds, not a useful model
TINY = FitOptions(rounds=4, num_leaves=7, learning_rate=0.3, inner_folds=2, background_ratio=1.0,
                  max_tumor_voxels=500, num_threads=0, seed=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cases")
    make_studies(root, 3, seed=61)
    network = load_checkpoint(BUNDLED)
    cases = []
    for case in labelled_cases(root):
        data = network.preprocessing(with_label=True)(case)
        cnn = predict_regions(network.network, data["image"], PredictionSettings(roi_size=network.roi_size,
                                                                                 device="cpu"))
        cases.append(voxel_case(case["case_id"], data, network.spacing_mm, cnn))
    return network, cases, fit_classifiers(cases, TINY, [ONE_STAGE, FUSION]), root


def test_each_variant_records_its_thresholds_and_out_of_fold_scores(trained):
    _, cases, classifiers, _ = trained
    assert set(classifiers) == {ONE_STAGE, FUSION}
    assert len(classifiers[ONE_STAGE].stages) == 1 and len(classifiers[FUSION].stages) == 2
    fusion = classifiers[FUSION]
    assert "cnn_WT_g2" in fusion.stages[1].feature_names and "floor" in fusion.stages[1].feature_names
    assert set(fusion.training["inner_oof"]) == {"WT", "TC", "ET"}
    assert sorted(c for fold in fusion.training["inner_folds"] for c in fold) == sorted(c.case_id for c in cases)


def test_a_classifier_saved_in_a_checkpoint_loads_and_predicts_the_same(trained, tmp_path):
    network, cases, classifiers, _ = trained
    fusion = classifiers[FUSION]
    path = with_classifier(network, fusion, tmp_path / "fused.pt", version="fused-test")
    assert read_checkpoint_has_classifier(path)
    loaded = load_checkpoint(path)
    assert loaded.classifier is not None and loaded.version == "fused-test"
    assert loaded.classifier.thresholds == fusion.thresholds
    assert loaded.classifier.stages[1].feature_names == fusion.stages[1].feature_names
    case = cases[0]
    before = fusion.region_probabilities(case.data, case.cnn_regions)
    after = loaded.region_probabilities(case.data, PredictionSettings(roi_size=loaded.roi_size, device="cpu"))
    assert np.allclose(before, after, atol=1e-3)  # the network's weights are stored in float16
    assert path.stat().st_size < 10e6


def test_a_classifier_of_other_features_is_refused(trained):
    _, cases, classifiers, _ = trained
    other = dataclasses.replace(classifiers[ONE_STAGE], features_version=0)
    with pytest.raises(ValueError, match="features version"):
        other.region_probabilities(cases[0].data)


def test_the_served_pipeline_segments_with_a_fused_checkpoint(trained, tmp_path):
    network, _, classifiers, root = trained
    path = with_classifier(network, classifiers[FUSION], tmp_path / "fused.pt", version="fused-test")
    study = sorted(p for p in root.iterdir() if p.is_dir())[0]
    result = TumorSegmenter([path]).segment(str(study), study.name)
    assert result.model_version == "fused-test"
    values = set(np.unique(sitk.GetArrayViewFromImage(result.label)).tolist())
    assert values <= {0, 1, 2, 3}
    t1c = sitk.ReadImage(str(next(study.glob("*-t1c.nii.gz"))))
    assert result.label.GetSize() == t1c.GetSize()
