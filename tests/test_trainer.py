"""Training: fixed split, checkpoint file, a tiny real run, fine-tuning that never publishes
a worse model, and the torch.distributed path (two CPU processes over gloo)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lib.infers.pipeline import TumorSegmenter
from lib.model import NetworkSpec, build_network, load_checkpoint, save_checkpoint
from lib.model.checkpoint import interpolate_checkpoints, read_checkpoint_n4
from lib.trainers.config import TrainConfig
from lib.trainers.data import prepare_case
from lib.trainers.engine import TrainResult
from lib.trainers.run import candidate_path, publish_if_not_worse, run_training
from lib.trainers.split import TRAIN, VALIDATION, FixedSplit
from lib.transforms import NyulLandmarks

from _cases import make_studies

BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "monailabel_app" / "model" / "brats_segresnet.pt"
TINY = TrainConfig(max_epochs=1, steps_per_epoch=2, batch_size=1, samples_per_case=1, roi_size=32, val_roi_size=96,
                   num_workers=0, num_threads=1, init_filters=8, val_fraction=0.3)


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> list[dict[str, str]]:
    folder = tmp_path_factory.mktemp("labelled")
    ids = make_studies(folder, 3, seed=52)
    return [{"case_id": i, "image": str(folder / i), "label": str(folder / i / f"{i}-seg.nii.gz")} for i in ids]


def test_split_never_moves_a_case_and_ignores_arrival_order(tmp_path):
    ids = [f"case-{i:03d}" for i in range(40)]
    first = FixedSplit(tmp_path / "a.json", 0.25).assign(ids[:20])
    grown = FixedSplit(tmp_path / "a.json", 0.25).assign(ids)
    assert all(grown[c] == role for c, role in first.items())
    reversed_order = FixedSplit(tmp_path / "b.json", 0.25).assign(reversed(ids))
    assert reversed_order == grown
    assert 0 < sum(r == VALIDATION for r in grown.values()) < 40
    assert json.loads((tmp_path / "a.json").read_text())["assignment"] == grown


def test_two_cases_give_one_for_validation(tmp_path):
    split = FixedSplit(tmp_path / "s.json", 0.01)
    assert split.assign(["only"]) == {"only": TRAIN}
    assert sorted(split.assign(["only", "second"]).values()) == [TRAIN, VALIDATION]


def test_a_first_lone_case_trains_even_when_its_hash_says_validation(tmp_path):
    split = FixedSplit(tmp_path / "s.json", 0.99)
    assert split.assign(["only"]) == {"only": TRAIN}


def test_checkpoint_round_trip_keeps_predictions_and_metadata(tmp_path):
    spec = NetworkSpec(init_filters=8)
    net = build_network(spec).eval()
    landmarks = NyulLandmarks((1.0, 50.0, 99.0), {s: [0.0, 50.0, 100.0] for s in ("t1n", "t1c", "t2w", "t2f")},
                              (0.0, 100.0), 3)
    path = save_checkpoint(tmp_path / "m.pt", net, spec, version="v-test", landmarks=landmarks,
                           roi_size=(64, 64, 64), spacing_mm=2.0, n4=True, training={"epoch": 3})
    loaded = load_checkpoint(path)
    x = torch.randn(1, 4, 32, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net(x), loaded.network(x), atol=2e-2)
    assert (loaded.version, loaded.roi_size, loaded.training["epoch"]) == ("v-test", (64, 64, 64), 3)
    assert loaded.landmarks is not None and loaded.landmarks.standard["t1c"] == [0.0, 50.0, 100.0]
    assert loaded.n4 and read_checkpoint_n4(path)


def test_fine_tuning_keeps_the_checkpoints_n4_setting_unless_told(tmp_path):
    spec = NetworkSpec(init_filters=8)
    base = save_checkpoint(tmp_path / "base.pt", build_network(spec), spec, version="b", landmarks=None,
                           roi_size=(64, 64, 64), spacing_mm=2.0, n4=True)
    assert TrainConfig(init_from=str(base)).with_n4_resolved().n4 is True
    assert TrainConfig(init_from=str(base), n4=False).with_n4_resolved().n4 is False
    assert TrainConfig().with_n4_resolved().n4 is False


def test_a_run_with_n4_trains_on_corrected_cases_and_serves_them_corrected(cases, tmp_path):
    out = tmp_path / "model.pt"
    run_training(cases, out, TINY.replace(n4=True), split_path=tmp_path / "split.json",
                 cache_dir=tmp_path / "cache", version="tiny-n4")
    model = load_checkpoint(out)
    assert model.n4 and model.training["config"]["n4"] is True
    assert any(step.__class__.__name__ == "N4BiasCorrectiond" for step in model.preprocessing().transforms)
    corrected = prepare_case(cases[0], tmp_path / "cache", model.spacing_mm, n4=True)  # from the run's cache
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 3
    uncorrected = prepare_case(cases[0], tmp_path / "cache", model.spacing_mm)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 4  # cached apart from the corrected one
    assert not np.allclose(corrected.image, uncorrected.image, rtol=1e-3)


def test_interpolated_weights_lie_between_the_two_models_and_record_both(tmp_path):
    spec = NetworkSpec(init_filters=8)
    torch.manual_seed(0)
    pretrained = save_checkpoint(tmp_path / "pre.pt", build_network(spec), spec, version="pre", landmarks=None,
                                 roi_size=(64, 64, 64), spacing_mm=2.0, n4=False)
    tuned = save_checkpoint(tmp_path / "tuned.pt", build_network(spec), spec, version="tuned", landmarks=None,
                            roi_size=(64, 64, 64), spacing_mm=2.0, n4=False, training={"epoch": 12})
    out = interpolate_checkpoints(pretrained, tuned, 0.25, tmp_path / "mix.pt")
    a, b, mix = (load_checkpoint(p) for p in (pretrained, tuned, out))
    name = "convInit.conv.weight"
    expected = 0.25 * b.network.state_dict()[name] + 0.75 * a.network.state_dict()[name]
    assert torch.allclose(mix.network.state_dict()[name], expected, atol=1e-3)  # float16 storage
    assert not torch.allclose(expected, a.network.state_dict()[name], atol=1e-3)
    assert mix.version == "tuned-wise0.25" and mix.training["epoch"] == 12
    assert mix.training["interpolation"] == {"pretrained": "pre", "fine_tuned": "tuned", "fine_tuned_weight": 0.25}


def test_models_of_other_shapes_or_preprocessing_are_not_interpolated(tmp_path):
    small, wide = NetworkSpec(init_filters=8), NetworkSpec(init_filters=16)
    a = save_checkpoint(tmp_path / "a.pt", build_network(small), small, version="a", landmarks=None,
                        roi_size=(64, 64, 64), spacing_mm=2.0, n4=False)
    b = save_checkpoint(tmp_path / "b.pt", build_network(wide), wide, version="b", landmarks=None,
                        roi_size=(64, 64, 64), spacing_mm=2.0, n4=False)
    c = save_checkpoint(tmp_path / "c.pt", build_network(small), small, version="c", landmarks=None,
                        roi_size=(64, 64, 64), spacing_mm=1.0, n4=False)
    with pytest.raises(ValueError, match="differ in spec"):
        interpolate_checkpoints(a, b, 0.5, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="differ in spacing_mm"):
        interpolate_checkpoints(a, c, 0.5, tmp_path / "x.pt")
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        interpolate_checkpoints(a, a, 1.5, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a braintumorlabel-checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_a_tiny_run_publishes_a_checkpoint_with_region_dice(cases, tmp_path):
    out = tmp_path / "model.pt"
    result, publication = run_training(cases, out, TINY, split_path=tmp_path / "split.json",
                                       cache_dir=tmp_path / "cache", version="tiny",
                                       progress_path=tmp_path / "progress.json")
    assert out.is_file() and publication.published and publication.checkpoint == str(out)
    assert set(result.best_dice) == {"WT", "TC", "ET"}
    assert all(0.0 <= v <= 1.0 for v in result.best_dice.values())
    assert len(result.val_cases) == 1 and len(result.train_cases) == 2
    model = load_checkpoint(out)
    assert model.landmarks is not None and model.training["val_cases"] == result.val_cases
    assert model.training["config"] == TINY.replace(n4=False, classifier=False).to_dict() and not model.n4
    assert json.loads((tmp_path / "progress.json").read_text())["state"] == "DONE"
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 3
    assert not candidate_path(out).exists() and not list(tmp_path.glob("*.state"))


def test_a_run_worse_than_the_served_model_is_kept_as_a_candidate(cases, tmp_path):
    out = tmp_path / "model.pt"
    shutil.copyfile(BUNDLED_MODEL, out)  # a trained model; two steps from scratch cannot match it
    served = out.read_bytes()
    result, publication = run_training(cases, out, TINY.replace(min_validation_cases=1),
                                       split_path=tmp_path / "split.json", cache_dir=tmp_path / "cache",
                                       version="worse", served=out,
                                       progress_path=tmp_path / "progress.json")
    assert not publication.published and "below the served model" in publication.reason
    assert out.read_bytes() == served
    assert load_checkpoint(candidate_path(out)).version == "worse"
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["publication"]["published"] is False


def test_a_run_as_good_as_the_served_model_replaces_it_only_on_enough_validation_cases(cases, tmp_path):
    out = tmp_path / "model.pt"
    shutil.copyfile(BUNDLED_MODEL, out)
    served = out.read_bytes()

    def candidate() -> TrainResult:  # the served model itself: the same Dice on every case
        shutil.copyfile(BUNDLED_MODEL, candidate_path(out))
        return TrainResult({}, 1, 1, str(candidate_path(out)), [], [], 0.0, [], "max_epochs")

    thin = publish_if_not_worse(candidate(), out, out, cases[:2], min_validation_cases=3)
    assert not thin.published and "2 validation case(s), fewer than the 3" in thin.reason
    assert thin.candidate_dice == thin.served_dice and out.read_bytes() == served  # scored for the record
    enough = publish_if_not_worse(candidate(), out, out, cases[:2], min_validation_cases=2)
    assert enough.published and not candidate_path(out).exists()


def test_an_interrupted_run_resumes_after_its_last_epoch(cases, tmp_path):
    out = tmp_path / "model.pt"
    config = TINY.replace(max_epochs=3, time_limit_s=1e-3)  # stops after its first epoch
    first, _ = run_training(cases, out, config, split_path=tmp_path / "split.json", cache_dir=tmp_path / "cache",
                            version="long")
    assert first.stopped_by == "time_limit" and first.epochs == 1
    state = next(tmp_path.glob("*.state"))
    assert state.is_file()
    second, _ = run_training(cases, out, config.replace(time_limit_s=None), split_path=tmp_path / "split.json",
                             cache_dir=tmp_path / "cache", version="long")
    assert [h["epoch"] for h in second.history] == [1, 2, 3] and second.stopped_by == "max_epochs"
    assert not state.exists()


def test_two_processes_train_together_over_torch_distributed(cases, tmp_path):
    out = tmp_path / "model.pt"
    config = TINY.replace(steps_per_epoch=2, world_size=2, backend="gloo", device="cpu")
    result, publication = run_training(cases, out, config, split_path=tmp_path / "split.json",
                                       cache_dir=tmp_path / "cache", version="ddp")
    assert out.is_file() and result.epochs == 1 and publication.published
    weights = load_checkpoint(out).network.state_dict()
    assert all(np.isfinite(v.numpy()).all() for v in weights.values())


def test_a_published_model_is_served_from_the_next_request(tmp_path):
    trained = tmp_path / "trained.pt"
    segmenter = TumorSegmenter([trained, BUNDLED_MODEL])
    bundled_version = segmenter.checkpoint().version
    spec = NetworkSpec(init_filters=8)
    save_checkpoint(trained, build_network(spec), spec, version="published-now", landmarks=None,
                    roi_size=(64, 64, 64), spacing_mm=2.0, n4=False)
    assert segmenter.checkpoint().version == "published-now" != bundled_version
