"""The model registry: versions with their metrics and labels, the bundled model, and serving an
earlier version (rollback) that inference picks up without a restart."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from lib.errors import ConflictError, UnknownIdError
from lib.infers.pipeline import TumorSegmenter
from lib.model import NetworkSpec, build_network, save_checkpoint
from lib.model.registry import BUNDLED, CANDIDATE, PUBLISHED, ModelRegistry
from lib.trainers.lock import TrainerLock


def _checkpoint(path: Path, version: str, init_from: str | None = None) -> Path:
    spec = NetworkSpec(init_filters=8)
    return save_checkpoint(path, build_network(spec), spec, version=version, landmarks=None, roi_size=(32, 32, 32),
                           spacing_mm=2.0, n4=False, training={"config": {"init_from": init_from}})


@pytest.fixture
def models(tmp_path: Path) -> tuple[ModelRegistry, Path]:
    bundled = _checkpoint(tmp_path / "app" / "model.pt", "bundled-1")
    model_dir = tmp_path / "trained"
    return ModelRegistry(model_dir, model_dir / "model.pt", bundled), model_dir


def test_the_bundled_model_is_the_first_version(models):
    registry, _ = models
    (entry,) = registry.versions()
    assert (entry.version, entry.status) == ("bundled-1", BUNDLED)
    assert registry.history()[0]["version"] == "bundled-1"


def test_a_run_is_registered_with_its_metrics_labels_and_parent(models, tmp_path):
    registry, model_dir = models
    published = _checkpoint(model_dir / "model.pt", "run-1", init_from=str(tmp_path / "app" / "model.pt"))
    registry.register(published, PUBLISHED, labels={"study-a": 2, "study-b": 1},
                      validation_dice={"WT": 0.8, "TC": 0.7, "ET": 0.6}, served_dice={"WT": 0.5, "TC": 0.5, "ET": 0.5},
                      validation_cases=["study-c"], reason="published: better")
    candidate = _checkpoint(model_dir / "model.candidate.pt", "run-2", init_from=str(published))
    registry.register(candidate, CANDIDATE, validation_dice={"WT": 0.1, "TC": 0.1, "ET": 0.1}, reason="worse")

    versions = {v.version: v for v in registry.versions()}
    assert list(versions) == ["bundled-1", "run-1", "run-2"]
    assert versions["run-1"].labels == {"study-a": 2, "study-b": 1}
    assert versions["run-1"].validation_dice["WT"] == 0.8 and versions["run-1"].validation_cases == ["study-c"]
    assert (versions["run-1"].parent, versions["run-2"].parent) == ("bundled-1", "run-1")
    assert versions["run-2"].status == CANDIDATE
    assert (model_dir / versions["run-2"].file).is_file()  # kept even if the candidate file is replaced later
    assert [h["version"] for h in registry.history()] == ["bundled-1", "run-1"]  # a candidate is not served
    on_disk = json.loads((model_dir / "registry.json").read_text())
    assert set(on_disk["versions"]) == {"bundled-1", "run-1", "run-2"}


def test_serving_an_earlier_version_switches_inference_without_a_restart(models, tmp_path):
    registry, model_dir = models
    registry.register(_checkpoint(model_dir / "model.pt", "run-1"), PUBLISHED)
    segmenter = TumorSegmenter([model_dir / "model.pt", tmp_path / "app" / "model.pt"])
    assert segmenter.checkpoint().version == "run-1"

    registry.serve("bundled-1", user="admin", reason="run-1 misses small lesions")
    assert segmenter.checkpoint().version == "bundled-1"
    registry.serve("run-1", user="admin")
    assert segmenter.checkpoint().version == "run-1"
    assert [(h["version"], h["by"]) for h in registry.history()][-2:] == [("bundled-1", "admin"), ("run-1", "admin")]
    assert registry.history()[-2]["reason"] == "run-1 misses small lesions"


def test_an_unknown_or_altered_version_is_refused_and_nothing_changes(models):
    registry, model_dir = models
    entry = registry.register(_checkpoint(model_dir / "model.pt", "run-1"), PUBLISHED)
    served = (model_dir / "model.pt").read_bytes()
    with pytest.raises(UnknownIdError, match="unknown model version 'run-9'"):
        registry.serve("run-9", user="admin")
    (model_dir / entry.file).write_bytes(b"tampered")
    with pytest.raises(UnknownIdError, match="missing or changed"):
        registry.serve("run-1", user="admin")
    assert (model_dir / "model.pt").read_bytes() == served


def test_a_serve_refused_under_the_registry_lock_changes_nothing(models):
    registry, model_dir = models
    registry.register(_checkpoint(model_dir / "model.pt", "run-1"), PUBLISHED)
    served, history = (model_dir / "model.pt").read_bytes(), registry.history()

    def training_running() -> None:
        raise ConflictError("a training is running already")

    with pytest.raises(ConflictError, match="training is running"):
        registry.serve("bundled-1", user="admin", refuse_if=training_running)
    assert (model_dir / "model.pt").read_bytes() == served and registry.history() == history


def test_a_trainer_starting_while_a_serve_holds_the_registry_waits_for_it(models, tmp_path):
    registry, model_dir = models
    registry.register(_checkpoint(model_dir / "model.pt", "run-1"), PUBLISHED)
    lock = TrainerLock(model_dir / "trainer.lock")
    order: list[str] = []
    done = threading.Event()

    def train() -> None:
        with lock.hold():
            order.append("trainer")
            done.wait(10)

    starter = threading.Thread(target=train)

    def serve_check() -> None:  # the trainer tries to start while the serve is under way
        starter.start()
        time.sleep(0.3)
        order.append("check")
        lock.check_free()

    registry.serve("bundled-1", user="admin", refuse_if=serve_check)
    deadline = time.monotonic() + 10
    while lock.holder() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert order == ["check", "trainer"]
        with pytest.raises(ConflictError):  # and now a serve sees the trainer
            registry.serve("run-1", user="admin", refuse_if=lock.check_free)
    finally:
        done.set()
        starter.join(10)
