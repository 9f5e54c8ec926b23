"""Training: fixed split, checkpoint file, a tiny real run, fine-tuning that never publishes
a worse model, and the torch.distributed path (two CPU processes over gloo)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from _cases import make_studies
from lib.model import NetworkSpec, build_network, load_checkpoint, save_checkpoint
from lib.trainers.engine import TrainConfig
from lib.trainers.run import run_training
from lib.trainers.split import TRAIN, VALIDATION, FixedSplit
from lib.transforms import NyulLandmarks

TINY = dict(max_epochs=1, steps_per_epoch=2, batch_size=1, samples_per_case=1, roi_size=(32, 32, 32),
            val_roi_size=(64, 64, 64), num_workers=0, num_threads=1, spec=NetworkSpec(init_filters=8))


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
                           roi_size=(64, 64, 64), training={"epoch": 3})
    loaded = load_checkpoint(path)
    x = torch.randn(1, 4, 32, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net(x), loaded.network(x), atol=2e-2)
    assert (loaded.version, loaded.roi_size, loaded.training["epoch"]) == ("v-test", (64, 64, 64), 3)
    assert loaded.landmarks is not None and loaded.landmarks.standard["t1c"] == [0.0, 50.0, 100.0]


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a braintumorlabel-checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_a_tiny_run_publishes_a_checkpoint_with_region_dice(cases, tmp_path):
    out = tmp_path / "model.pt"
    result = run_training(cases, out, TrainConfig(**TINY), split_path=tmp_path / "split.json",
                          cache_dir=tmp_path / "cache", version="tiny", val_fraction=0.3,
                          progress_path=tmp_path / "progress.json")
    assert out.is_file() and result.checkpoint == str(out)
    assert set(result.best_dice) == {"WT", "TC", "ET"}
    assert all(0.0 <= v <= 1.0 for v in result.best_dice.values())
    assert len(result.val_cases) == 1 and len(result.train_cases) == 2
    model = load_checkpoint(out)
    assert model.landmarks is not None and model.training["val_cases"] == result.val_cases
    assert json.loads((tmp_path / "progress.json").read_text())["state"] == "DONE"
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 3


def test_fine_tuning_that_does_not_improve_publishes_nothing(cases, tmp_path):
    out = tmp_path / "model.pt"
    run_training(cases, out, TrainConfig(**TINY), split_path=tmp_path / "split.json", cache_dir=tmp_path / "cache",
                 version="base", val_fraction=0.3)
    base = out.read_bytes()
    still = TrainConfig(**{**TINY, "learning_rate": 0.0}, init_from=str(out))
    result = run_training(cases, out, still, split_path=tmp_path / "split.json", cache_dir=tmp_path / "cache",
                          version="tuned", val_fraction=0.3)
    assert result.history[0]["epoch"] == 0  # the starting model's score is the bar
    assert result.checkpoint is None
    assert out.read_bytes() == base


def test_two_processes_train_together_over_torch_distributed(cases, tmp_path):
    out = tmp_path / "model.pt"
    config = TrainConfig(**{**TINY, "steps_per_epoch": 2}, world_size=2, backend="gloo", device="cpu")
    result = run_training(cases, out, config, split_path=tmp_path / "split.json", cache_dir=tmp_path / "cache",
                          version="ddp", val_fraction=0.3)
    assert out.is_file() and result.epochs == 1
    weights = load_checkpoint(out).network.state_dict()
    assert all(np.isfinite(v.numpy()).all() for v in weights.values())
