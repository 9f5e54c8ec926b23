"""A cohort: many studies segmented as jobs, resumable, cached by content and model version.

Each study gets a result key (its input fingerprint, the model version, the pipeline's
parameters: :func:`lib.jobs.work.result_key`) and a job id made from the key and the
destination (:func:`lib.jobs.work.job_id_for`). A study whose destinations already hold a
result of the same key is *cached* and not segmented again; a new model version changes every
key. The destinations are written by this process, once per job id, as outcomes arrive, so an
interrupted cohort (Ctrl-C, a killed process, a killed worker, a broker restart) run again
picks up where it stopped, with no study lost and none stored twice. A study that fails
(a missing sequence, a corrupt file, a PACS that stays down) is a failed row with the
reason; the others go on.

Destinations: :class:`OutputFolder` (``<output>/<study>/<study>-label.nii.gz`` and
``-result.json``, then ``cohort.csv``, ``cohort.json`` and ``cohort.png`` for the cohort) and
:class:`DatastoreLabels` (a model-output label version in the study's own datastore: for a
PACS, a DICOM SEG next to the study).
"""

from __future__ import annotations

import csv
import logging
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lib.atomic import atomic_path, read_json, write_json
from lib.datastore.base import ORIGINAL, StudyDatastore
from lib.errors import InputError, PacsUnavailableError, UnknownIdError

from .runners import Runner
from .work import (
    CACHED,
    CANCELLED,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    JobOutcome,
    JobSpec,
    StudyRef,
    job_id_for,
    result_key,
)

logger = logging.getLogger(__name__)

#: The volumes of a row, in the order of the cohort table.
VOLUMES = ("NCR", "ED", "ET", "TC", "WT")


@dataclass
class CohortRow:
    """One study of a cohort: its state (queued, running, done, cached, failed, cancelled), the
    worker that ran it, the reason of a failure, and its result (volumes in mL, measurements)."""

    study: str
    state: str = QUEUED
    key: str = ""
    job_id: str = ""
    worker: str = ""
    host: str = ""
    model_version: str | None = None
    volumes_ml: dict[str, float] = field(default_factory=dict)
    measurements: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    def finished(self) -> bool:
        return self.state in (DONE, CACHED, FAILED, CANCELLED)

    def take(self, record: dict[str, Any]) -> None:
        """Fill the result fields from an outcome's (or a cached result's) record."""
        for name in ("worker", "host", "model_version", "volumes_ml", "measurements", "notes", "error", "seconds"):
            if name in record and record[name] is not None:
                setattr(self, name, record[name])


class Destination(Protocol):
    """Where a cohort's results go."""

    name: str

    def cached(self, study: str, key: str) -> dict[str, Any] | None:
        """The stored result of this key for the study, if there is one."""

    def write(self, outcome: JobOutcome, key: str) -> None:
        """Store a done outcome; a job id already stored is not stored again."""


class OutputFolder:
    """``<root>/<study>/<study>-label.nii.gz`` and ``<study>-result.json`` (the outcome's record,
    its key and job id), written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.name = f"folder:{self.root.resolve()}"

    def check_writable(self) -> None:
        """:class:`InputError` when the folder cannot be created or written (before any work)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".write-test-"):
                pass
        except OSError as exc:
            raise InputError(f"the output folder {self.root} is not writable ({exc.strerror or exc})") from None

    def _result_path(self, study: str) -> Path:
        return self.root / study / f"{study}-result.json"

    def cached(self, study: str, key: str) -> dict[str, Any] | None:
        record = read_json(self._result_path(study))
        label = self.root / study / f"{study}-label.nii.gz"
        return record if record.get("key") == key and record.get("state") == DONE and label.exists() else None

    def write(self, outcome: JobOutcome, key: str) -> None:
        folder = self.root / outcome.study
        if read_json(self._result_path(outcome.study)).get("job_id") == outcome.job_id:
            return
        assert outcome.label_nii_gz is not None
        with atomic_path(folder / f"{outcome.study}-label.nii.gz", suffix=".nii.gz") as tmp:
            tmp.write_bytes(outcome.label_nii_gz)
        write_json(self._result_path(outcome.study), {**outcome.record(), "key": key})

    def write_failure(self, row: CohortRow) -> None:
        """A failed study's reason next to where its result would be (a rerun tries it again)."""
        write_json(self._result_path(row.study), {"study": row.study, "state": FAILED, "error": row.error,
                                                  "key": row.key})


class DatastoreLabels:
    """The next ``original`` label version of the study in ``store`` (for a PACS, a SEG written
    back next to the study), its record naming the job and the key."""

    def __init__(self, store: StudyDatastore, user: str, model: str = "brats_segresnet",
                 on_stored: Callable[[str], None] = lambda study: None) -> None:
        """``on_stored(study)`` is told of each label stored (the server's case search follows it)."""
        self.store, self.user, self.model, self.on_stored = store, user, model, on_stored
        self.name = f"datastore:{store.description()}"

    def _versions(self, study: str) -> list[dict[str, Any]]:
        if ORIGINAL not in self.store.label_tags(study):
            return []
        return [v.info for v in self.store.label_versions(study, ORIGINAL)]

    def cached(self, study: str, key: str) -> dict[str, Any] | None:
        return next((info for info in reversed(self._versions(study)) if info.get("input_key") == key), None)

    def write(self, outcome: JobOutcome, key: str) -> None:
        if any(info.get("job_id") == outcome.job_id for info in self._versions(outcome.study)):
            return
        assert outcome.label_nii_gz is not None and outcome.model_version is not None
        with tempfile.TemporaryDirectory(prefix="btl-cohort-") as folder:
            path = Path(folder) / "label.nii.gz"
            path.write_bytes(outcome.label_nii_gz)
            self.store.add_label(outcome.study, str(path), ORIGINAL,
                                 {"model": self.model, "volumes_ml": outcome.volumes_ml, "user": self.user,
                                  "job_id": outcome.job_id, "input_key": key, "worker": outcome.worker},
                                 model_version=outcome.model_version)
        self.on_stored(outcome.study)


@dataclass(frozen=True)
class Plan:
    """What a cohort computes: the model version and pipeline parameters of every key."""

    model_version: str
    pipeline: dict[str, Any]


class Cohort:
    """The studies ``refs`` of ``store`` (the datastore their ids belong to), segmented by
    ``runner`` into ``destinations``."""

    def __init__(self, store: StudyDatastore, refs: list[StudyRef], destinations: list[Destination], runner: Runner,
                 plan: Plan) -> None:
        if not destinations:
            raise ValueError("a cohort needs somewhere to put its results")
        self.store, self.refs, self.destinations, self.runner, self.plan = store, refs, destinations, runner, plan
        self.rows = [CohortRow(ref.study) for ref in refs]
        self._cancelled = False

    @property
    def where(self) -> str:
        return "|".join(d.name for d in self.destinations)

    def prepare(self) -> None:
        """Key every study and mark the ones every destination already holds as cached (a study
        whose inputs cannot be read fails here, with the reason)."""
        for row in self.rows:
            try:
                row.key = result_key(self.store.input_fingerprint(row.study), self.plan.model_version,
                                     self.plan.pipeline)
            except (InputError, UnknownIdError, PacsUnavailableError) as exc:
                row.state, row.error = FAILED, str(exc.args[0]) if isinstance(exc, LookupError) else str(exc)
                continue
            row.job_id = job_id_for(row.key, self.where)
            found = [d.cached(row.study, row.key) for d in self.destinations]
            if all(found):
                row.state = CACHED
                row.take(found[0] or {})

    def run(self, on_change: Callable[[Cohort], None] = lambda cohort: None, poll_s: float = 0.5) -> list[CohortRow]:
        """Segment every row not cached (or failed in :meth:`prepare`), storing each result as it
        arrives; ``on_change`` is called after each change. Returns the rows."""
        by_job = {row.job_id: row for row in self.rows if row.state == QUEUED}
        refs = {ref.study: ref for ref in self.refs}
        for row in by_job.values():
            self.runner.submit(JobSpec(row.job_id, refs[row.study], self.plan.model_version))
        on_change(self)
        while any(not row.finished() for row in by_job.values()):
            for outcome in self.runner.poll(poll_s):
                finished = by_job.get(outcome.job_id)
                if finished is None or finished.finished():
                    continue  # a second outcome of a redelivered job
                self._finish(finished, outcome)
            for job_id, (state, worker) in self.runner.states().items():
                if job_id in by_job and not by_job[job_id].finished():
                    by_job[job_id].state, by_job[job_id].worker = state, worker or by_job[job_id].worker
            if self._cancelled:
                unfinished = [row for row in by_job.values() if not row.finished()]
                self.runner.cancel(row.job_id for row in unfinished)
                for row in unfinished:
                    row.state, row.error = CANCELLED, "the cohort was cancelled"
            on_change(self)
        return self.rows

    def cancel(self) -> None:
        """Stop: queued studies do not start; running ones are not stored."""
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def _finish(self, row: CohortRow, outcome: JobOutcome) -> None:
        row.take(outcome.record())
        if outcome.state != DONE:
            row.state = outcome.state
            return
        try:
            for destination in self.destinations:
                destination.write(outcome, row.key)
        except Exception as exc:  # a destination that refuses: this study failed, the cohort goes on
            logger.exception("storing the result of %s", row.study)
            row.state, row.error = FAILED, f"its result could not be stored: {exc}"[:500]
            return
        row.state, row.error = DONE, None

    def counts(self) -> dict[str, int]:
        counts = {state: 0 for state in (QUEUED, RUNNING, DONE, CACHED, FAILED, CANCELLED)}
        for row in self.rows:
            counts[row.state] = counts.get(row.state, 0) + 1
        return counts


def write_summary(rows: Iterable[CohortRow], folder: Path, meta: dict[str, Any]) -> dict[str, Path]:
    """``cohort.csv`` (a row a study), ``cohort.json`` (``meta`` and the rows) and ``cohort.png``
    (the distributions of WT and ET volumes, and the failures) in ``folder``."""
    rows = list(rows)
    paths = {"csv": folder / "cohort.csv", "json": folder / "cohort.json", "png": folder / "cohort.png"}
    columns = ["study", "state", *(f"{r}_ml" for r in VOLUMES), *(f"{r}_percent_of_brain" for r in VOLUMES),
               "lesions", "enhancing_lesions", "hemisphere", "crosses_midline", "model_version", "worker",
               "seconds", "error"]
    with atomic_path(paths["csv"], suffix=".csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            percent = row.measurements.get("percent_of_brain") or {}
            writer.writerow([row.study, row.state, *(_number(row.volumes_ml.get(r)) for r in VOLUMES),
                             *(_number(percent.get(r)) for r in VOLUMES), row.measurements.get("lesions", ""),
                             row.measurements.get("enhancing_lesions", ""), row.measurements.get("hemisphere") or "",
                             _flag(row.measurements.get("crosses_midline")), row.model_version or "", row.worker,
                             row.seconds, row.error or ""])
    write_json(paths["json"], {**meta, "rows": [asdict(row) for row in rows]})
    _plot(rows, paths["png"], meta)
    return paths


def _number(value: Any) -> str:
    return "" if value is None else f"{float(value):.3f}"


def _flag(value: Any) -> str:
    return "" if value is None else str(bool(value)).lower()


def _plot(rows: list[CohortRow], path: Path, meta: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    segmented = [r for r in rows if r.state in (DONE, CACHED)]
    failed = [r for r in rows if r.state == FAILED]
    figure, axes = plt.subplots(1, 3, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1, 1, 1.2]})
    for ax, region, colour in ((axes[0], "WT", "#4c9be8"), (axes[1], "ET", "#f2c14e")):
        values = [r.volumes_ml.get(region, 0.0) for r in segmented]
        ax.hist(values, bins=min(20, max(3, len(values))), color=colour, edgecolor="black")
        ax.set_xlabel(f"{region} volume (mL)")
        ax.set_ylabel("studies")
        ax.set_title(f"{region}: median {sorted(values)[len(values) // 2]:.1f} mL" if values else f"{region}: none")
    axes[2].axis("off")
    lines = [f"{len(rows)} studies: {len(segmented)} segmented "
             f"({sum(r.state == CACHED for r in rows)} from the cache), {len(failed)} failed",
             f"model {meta.get('model_version', '?')}", ""]
    for row in failed[:8]:
        lines += textwrap.wrap(f"FAILED {row.study}: {row.error or ''}", 62, subsequent_indent="  ")[:3]
    if len(failed) > 8:
        lines.append(f"... and {len(failed) - 8} more (cohort.csv)")
    axes[2].text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=8, color="black")
    for ax in axes[:2]:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(f"Cohort {Path(str(meta.get('cohort', ''))).name} ({time.strftime('%Y-%m-%d %H:%M')})")
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
