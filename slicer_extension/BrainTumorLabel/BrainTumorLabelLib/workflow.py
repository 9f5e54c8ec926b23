"""What the module's buttons do, apart from the GUI (standard library only): each function is the
work of one button, run in a job (:mod:`.jobs`), and returns what the panel then shows. The
widget passes the values of its controls in and puts the results in its labels and tables.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from BrainTumorLabelLib.client import ServerClient, StudyRow
from BrainTumorLabelLib.jobs import Progress

MODEL = "brats_segresnet"
#: seconds between two looks at a running training
TRAINING_POLL_S = 2.0


@dataclass(frozen=True)
class Connection:
    """What Connect found: a login is needed first, or the server's description and its studies."""

    login_required: bool
    status: str
    strategies: tuple[str, ...] = ()
    rows: tuple[StudyRow, ...] = ()


def server_status(info: dict[str, Any], model: str = MODEL) -> str:
    """One line on the server: name, version, the model's version and its warning, if any."""
    described = info.get("models", {}).get(model, {})
    warning = described.get("model_warning")
    return (f"{info.get('name', 'server')} {info.get('version', '')}: model {described.get('model_version', 'none')}"
            + (f" ({warning})" if warning else ""))


def connect(client: ServerClient) -> Connection:
    """Whether a login is needed first (``/auth/`` is public), else what the panel shows."""
    if client.login_required() and not client.token:
        return Connection(True, "This server requires a login: log in, or paste an access token.")
    info = client.info()
    return Connection(False, server_status(info), tuple(sorted(info.get("strategies", {}))), tuple(client.studies()))


def log_in(client: ServerClient, username: str, password: str, token: str) -> Connection:
    """Log in with a user name and password (the server asks its identity provider), or use an
    access token from the provider's own login page; then connect."""
    if token.strip():
        client.token = token.strip()
    else:
        client.login(username, password)
    return connect(client)


def filter_rows(rows: Sequence[StudyRow], text: str) -> list[StudyRow]:
    """The studies whose id contains ``text`` (case does not matter)."""
    wanted = text.strip().lower()
    return [row for row in rows if wanted in row.image_id.lower()]


def study_cells(row: StudyRow) -> tuple[str, str, str, str]:
    """A study's cells in the studies table: id, labelled, sequences, problem."""
    return row.image_id, "yes" if row.labelled else "", " ".join(row.sequences), row.problem or ""


def prior_choices(rows: Sequence[StudyRow]) -> list[str]:
    """What the prior-study box offers: none, or a study with a submitted label."""
    return ["(none)"] + [row.image_id for row in rows if row.labelled]


def segmented_status(model_version: str, notes: Sequence[str]) -> str:
    """What the panel says after segmenting: the model, and the server's notes for the reader
    (a series without signal, a registration done, ...)."""
    return " ".join([f"Segmented by {model_version}.", *(f"Note: {note}." for note in notes)])


def submission_info(annotator: str, segmented_at: float | None, model_version: str,
                    now: float | None = None) -> dict[str, Any]:
    """What is recorded next to a submitted label: who, when, how long after segmenting, from which model."""
    now = time.time() if now is None else now
    return {"user": annotator, "submitted": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
            "seconds_since_segmentation": round(now - segmented_at, 1) if segmented_at else None,
            "model_version": model_version, "client": "3D Slicer BrainTumorLabel"}


def training_progress(stats: dict[str, Any], epochs: int) -> tuple[str, float | None]:
    """The training's progress line and fraction from the server's ``train_stats``."""
    epoch, total = stats.get("epoch", 0), stats.get("max_epochs", epochs)
    best = ", ".join(f"{k} {v:.2f}" for k, v in stats.get("best_dice", {}).items())
    return (f"epoch {epoch}/{total}" + (f", best validation Dice {best}" if best else ""),
            epoch / total if total else None)


def train(client: ServerClient, epochs: int, progress: Progress, model: str = MODEL,
          poll_s: float = TRAINING_POLL_S) -> dict[str, Any]:
    """Start a training run and follow it until it ends (its final status) or the job is
    cancelled (an empty status: the job's ``on_cancel`` stops the run on the server)."""
    client.start_training(model, {"max_epochs": epochs})
    while not progress.cancelled:
        status = client.training_status()
        if status.get("status") not in ("SUBMITTED", "RUNNING"):
            return status
        progress.report(*training_progress(client.info().get("train_stats", {}).get(model, {}), epochs))
        time.sleep(poll_s)
    return {}


def training_status(status: dict[str, Any]) -> str:
    """The line shown when a training run has ended."""
    return f"Training {str(status.get('status', 'stopped')).lower()}"


def prior_for_report(chosen: str, image_id: str) -> str | None:
    """The prior study to compare with: none when "(none)" or the study itself is chosen."""
    return None if chosen in ("", "(none)", image_id) else chosen
