"""One training configuration: the command line, the server's train task and the checkpoint
record all read TrainConfig, so a default lives in one place."""

from __future__ import annotations

import argparse
import math

import pytest

from lib.errors import InputError
from lib.model.registry import ModelRegistry
from lib.trainers.cli import main as btl_train
from lib.trainers.config import REQUEST_KEYS, TrainConfig
from lib.trainers.task import BrainTumorTraining


def test_the_command_line_offers_every_field_with_its_default():
    parser = argparse.ArgumentParser()
    TrainConfig.add_arguments(parser)
    assert TrainConfig.from_arguments(parser.parse_args([])) == TrainConfig()
    parsed = TrainConfig.from_arguments(parser.parse_args(["--spacing-mm", "1.5", "--mixed-precision", "false"]))
    assert (parsed.spacing_mm, parsed.mixed_precision) == (1.5, False)


def test_the_train_task_shows_the_same_defaults(tmp_path):
    registry = ModelRegistry(tmp_path, tmp_path / "m.pt", tmp_path / "bundled.pt")
    task = BrainTumorTraining(tmp_path / "m.pt", tmp_path, lambda: tmp_path / "m.pt", registry)
    shown = task.config()
    defaults = TrainConfig()
    assert {key: shown[key] for key in REQUEST_KEYS} == {key: getattr(defaults, key) for key in REQUEST_KEYS}


def test_a_request_is_converted_to_the_field_types():
    config = TrainConfig.from_request({"max_epochs": "3", "learning_rate": "0.001", "unknown": 1})
    assert (config.max_epochs, config.learning_rate) == (3, 0.001)


@pytest.mark.parametrize("request_", [{"max_epochs": "abc"}, {"batch_size": 0}, {"learning_rate": math.nan},
                                      {"max_epochs": 1e9}, {"roi_size": 50}, {"val_fraction": 1.5},
                                      {"min_validation_cases": 0}])
def test_a_bad_request_is_refused_with_the_option_named(request_):
    with pytest.raises(InputError, match=next(iter(request_))):
        TrainConfig.from_request(request_)


@pytest.mark.parametrize("option", ["non_enhancing_prob", "signal_dropout_prob"])
@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_a_share_of_augmented_patches_outside_0_1_is_refused(option, share):
    with pytest.raises(InputError, match=option):
        TrainConfig(**{option: share})


def test_fine_tuning_uses_its_own_learning_rate():
    config = TrainConfig(learning_rate=1e-3, fine_tune_learning_rate=1e-4)
    assert config.effective_learning_rate == 1e-3
    assert config.replace(init_from="model.pt").effective_learning_rate == 1e-4


def test_btl_train_names_a_cases_folder_that_does_not_exist(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        btl_train(["--cases", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.pt"), "--version", "v"])
    assert exit_info.value.code == 2
    assert "no such folder" in capsys.readouterr().err and not (tmp_path / "m.pt").exists()
