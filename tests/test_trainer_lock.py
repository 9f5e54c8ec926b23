"""The training lock against real processes: held while the trainer lives, free once it is
killed (what ``DELETE /train/`` waits for before it answers)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from lib.errors import ConflictError
from lib.trainers.lock import TrainerLock

HOLDER = """
import sys, time
from lib.trainers.lock import TrainerLock
with TrainerLock(sys.argv[1]).hold():
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture()
def trainer(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "trainer.lock")],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    yield process
    process.kill()
    process.wait(30)


def test_a_live_trainer_holds_the_lock_and_refuses_a_second(trainer, tmp_path):
    lock = TrainerLock(tmp_path / "trainer.lock")
    assert lock.holder() == {"pid": trainer.pid, "started": lock.holder()["started"]}
    with pytest.raises(ConflictError, match=str(trainer.pid)):
        lock.check_free()
    assert lock.wait_released(timeout_s=0.3) is False


def test_a_killed_trainer_releases_the_lock_without_its_cleanup(trainer, tmp_path):
    lock = TrainerLock(tmp_path / "trainer.lock")
    trainer.kill()  # SIGKILL: its finally block never runs, the file stays; the parent has not reaped it yet
    started = time.monotonic()
    assert lock.wait_released(timeout_s=30) is True
    assert time.monotonic() - started < 30 and (tmp_path / "trainer.lock").exists()
    with lock.hold():  # the stale file is taken over
        assert lock.holder() is not None
    assert not (tmp_path / "trainer.lock").exists()
