"""The server's cohorts: many studies of its datastore segmented as jobs, with per-study state.

``POST /btl/jobs`` starts one (:meth:`CohortService.start`), ``GET /btl/jobs`` lists them,
``GET /btl/jobs/{id}`` gives every study's state (queued, running on which worker, done,
cached, failed with the reason, cancelled), ``DELETE /btl/jobs/{id}`` cancels one. Each
cohort's record is ``<state dir>/jobs/<id>.json``, rewritten as it goes; a cohort that a
server restart interrupted is resumed when the server starts (its finished studies are
cached, see :mod:`lib.jobs.cohort`). The labels go into the datastore as ``original``
versions (for a PACS, DICOM SEGs), once per job.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lib.atomic import read_json, write_json
from lib.datastore.base import StudyDatastore
from lib.errors import ConflictError, InputError, UnknownIdError

from .cohort import Cohort, CohortRow, DatastoreLabels, Plan
from .shared import SharedRunner
from .work import StudyRef

logger = logging.getLogger(__name__)

#: Cohort states.
RUNNING, FINISHED, CANCELLED = "running", "finished", "cancelled"
#: The most studies one cohort may name.
MAX_STUDIES = 100_000


@dataclass(frozen=True)
class JobSettings:
    """``BTL_BROKER_URL``: run the server's jobs (its inferences and cohorts) on the workers of
    this broker (default none: in the server's own process). ``BTL_JOB_TIMEOUT_S``: how long an
    inference waits for its job's outcome (default 600). ``BTL_JOB_STALL_S``: a job with no sign
    of life for this long is sent again under the same id (default 1800)."""

    broker_url: str = ""
    infer_timeout_s: float = 600.0
    stall_s: float = 1800.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> JobSettings:
        env = os.environ if environ is None else environ
        return cls(env.get("BTL_BROKER_URL", "").strip(), _seconds(env, "BTL_JOB_TIMEOUT_S", cls.infer_timeout_s),
                   _seconds(env, "BTL_JOB_STALL_S", cls.stall_s))


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    try:
        value = float(text) if text else default
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {text!r}") from None
    if not value > 0:
        raise ValueError(f"{name} must be positive, not {text!r}")
    return value


class CohortService:
    """Cohorts over ``store`` (at address ``source``), run by ``runner``, recorded in ``folder``;
    ``plan()`` is what the served model computes now."""

    def __init__(self, store: StudyDatastore, source: str, folder: Path, runner: SharedRunner,
                 plan: Callable[[], Plan], on_stored: Callable[[str], None] = lambda study: None) -> None:
        """``on_stored(study)``: told of each label a cohort stores."""
        self.store, self.source, self.folder, self.runner, self.plan = store, source, Path(folder), runner, plan
        self.on_stored = on_stored
        self._running: dict[str, Cohort] = {}
        self._lock = threading.Lock()

    def _path(self, cohort_id: str) -> Path:
        if not cohort_id.isalnum() or len(cohort_id) > 64:
            raise UnknownIdError(f"unknown job '{cohort_id[:80]}'")
        return self.folder / f"{cohort_id}.json"

    def start(self, studies: list[str] | None, user: str) -> dict[str, Any]:
        """A new cohort of ``studies`` (None: every study of the datastore that can be segmented)."""
        ids = [s for s in self.store.list_images() if not self.store.study_problem(s)] if studies is None \
            else list(dict.fromkeys(studies))
        if not ids:
            raise InputError("the cohort has no study")
        if len(ids) > MAX_STUDIES:
            raise InputError(f"a cohort may name at most {MAX_STUDIES:,} studies, not {len(ids):,}")
        known = set(self.store.list_images())
        unknown = [s for s in ids if s not in known]
        if unknown:
            raise UnknownIdError(f"unknown image id '{unknown[0]}'" + (f" (and {len(unknown) - 1} more)"
                                                                      if len(unknown) > 1 else ""))
        cohort_id = uuid.uuid4().hex
        record: dict[str, Any] = {"id": cohort_id, "user": user, "state": RUNNING, "studies": ids,
                                  "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                  "model_version": self.plan().model_version}
        write_json(self._path(cohort_id), record)
        self._launch(record)
        return self.summary(cohort_id)

    def resume_unfinished(self) -> int:
        """Start again the cohorts a restart interrupted; returns how many."""
        resumed = 0
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            record = read_json(path)
            if record.get("state") == RUNNING and record.get("id") and record["id"] not in self._running:
                logger.info("resuming cohort %s (%d studies)", record["id"], len(record.get("studies", [])))
                self._launch({**record, "model_version": self.plan().model_version})
                resumed += 1
        return resumed

    def _launch(self, record: dict[str, Any]) -> None:
        plan = self.plan()
        cohort = Cohort(self.store, [StudyRef(self.source, s) for s in record["studies"]],
                        [DatastoreLabels(self.store, record["user"], on_stored=self.on_stored)], self.runner.view(),
                        plan)
        with self._lock:
            self._running[record["id"]] = cohort
        threading.Thread(target=self._run, args=(record, cohort), name=f"cohort-{record['id'][:8]}",
                         daemon=True).start()

    def _run(self, record: dict[str, Any], cohort: Cohort) -> None:
        last = [0.0]

        def save(current: Cohort, force: bool = False) -> None:
            if force or time.monotonic() - last[0] > 1.0:
                last[0] = time.monotonic()
                write_json(self._path(record["id"]), {**record, "rows": [asdict(r) for r in current.rows]})

        try:
            cohort.prepare()
            cohort.run(save)
            record["state"] = CANCELLED if cohort.cancelled else FINISHED
        except Exception:
            logger.exception("cohort %s", record["id"])
            record["state"] = FINISHED
            for row in cohort.rows:
                if not row.finished():
                    row.state, row.error = "failed", row.error or "the cohort stopped on a server fault"
        finally:
            record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            save(cohort, force=True)
            with self._lock:
                self._running.pop(record["id"], None)

    def _record(self, cohort_id: str) -> dict[str, Any]:
        path = self._path(cohort_id)
        record = read_json(path)
        if not record:
            raise UnknownIdError(f"unknown job '{cohort_id}'")
        with self._lock:
            live = self._running.get(cohort_id)
        if live is not None:
            record["rows"] = [asdict(r) for r in live.rows]
        return record

    def summary(self, cohort_id: str) -> dict[str, Any]:
        record = self._record(cohort_id)
        rows = record.get("rows") or [asdict(CohortRow(s)) for s in record["studies"]]
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["state"]] = counts.get(row["state"], 0) + 1
        return {k: record.get(k) for k in ("id", "user", "created", "finished", "state", "model_version")} | \
            {"studies": len(record["studies"]), "counts": counts}

    def detail(self, cohort_id: str) -> dict[str, Any]:
        record = self._record(cohort_id)
        return {**self.summary(cohort_id), "rows": record.get("rows") or []}

    def list(self) -> list[dict[str, Any]]:
        ids = [p.stem for p in sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime)] \
            if self.folder.is_dir() else []
        return [self.summary(i) for i in ids]

    def cancel(self, cohort_id: str) -> dict[str, Any]:
        record = self._record(cohort_id)
        with self._lock:
            live = self._running.get(cohort_id)
        if live is None:
            raise ConflictError(f"job '{cohort_id}' is {record.get('state')}: nothing to cancel")
        live.cancel()
        return self.summary(cohort_id)
