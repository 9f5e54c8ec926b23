"""One segmentation job: what it names, what it gives back, and the code that does it on any host.

A job names its study by the datastore's address and the study id (:class:`StudyRef`), never
by a file of the machine that asked, so a worker on another host opens the same study (a
folder path that host shares, or the PACS). It runs the pipeline the server runs
(:class:`lib.infers.pipeline.TumorSegmenter`: preprocessing, model, postprocessing), measures
the label (:func:`lib.report.measure.measure`) and gives back a :class:`JobOutcome` with the
label itself; it writes nothing. Whoever submitted the job stores the label, once per job id.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from lib.brats import REFERENCE_SEQUENCE
from lib.datastore import open_datastore
from lib.datastore.base import StudyDatastore
from lib.errors import InputError, ModelUnavailableError, PacsUnavailableError, UnknownIdError
from lib.infers.pipeline import TumorSegmenter
from lib.report.measure import measure
from lib.transforms import find_case_files

logger = logging.getLogger(__name__)

#: Job states, in the order a job goes through them.
QUEUED, RUNNING, DONE, FAILED, CANCELLED, CACHED = "queued", "running", "done", "failed", "cancelled", "cached"


@dataclass(frozen=True)
class StudyRef:
    """A study as every host that runs jobs can reach it: ``source`` is the datastore's address
    (a folder path shared by those hosts, or a DICOMweb URL) and ``study`` its image id."""

    source: str
    study: str


@dataclass(frozen=True)
class JobSpec:
    """What a worker is asked to do: segment ``ref`` with model ``model_version`` (None: the one
    it serves; otherwise a worker serving another version refuses, so that a result is never
    filed under the wrong version). ``job_id`` names the job for its whole life, across
    redeliveries and resubmissions."""

    job_id: str
    ref: StudyRef
    model_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "ref": asdict(self.ref), "model_version": self.model_version}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobSpec:
        return cls(str(data["job_id"]), StudyRef(**data["ref"]), data.get("model_version"))


@dataclass
class JobOutcome:
    """A finished job: ``state`` done or failed (``error`` says why, ``error_kind`` its class);
    for a done job the label (NIfTI bytes on the study's t1c grid, 1 NCR, 2 ED, 3 ET), the
    volumes in mL, the measurements of :func:`summary_measurements`, the model version, notes,
    seconds per stage; and who ran it (``worker``, ``host``) in how long (``seconds``)."""

    job_id: str
    study: str
    state: str
    model_version: str | None = None
    volumes_ml: dict[str, float] = field(default_factory=dict)
    measurements: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    label_nii_gz: bytes | None = field(default=None, repr=False)
    error: str | None = None
    error_kind: str | None = None
    worker: str = ""
    host: str = ""
    seconds: float = 0.0

    def to_message(self) -> dict[str, Any]:
        """JSON-safe (the label in base64), for a message through the broker."""
        data = asdict(self)
        data["label_nii_gz"] = base64.b64encode(self.label_nii_gz).decode() if self.label_nii_gz else None
        return data

    @classmethod
    def from_message(cls, data: Mapping[str, Any]) -> JobOutcome:
        values = dict(data)
        label = values.pop("label_nii_gz", None)
        return cls(**values, label_nii_gz=base64.b64decode(label) if label else None)

    def record(self) -> dict[str, Any]:
        """What a result file or a row keeps of it (everything but the label)."""
        return {k: v for k, v in asdict(self).items() if k != "label_nii_gz"}

    def raise_for_failure(self) -> None:
        """A failed or cancelled outcome as the typed error its kind names (for a caller that
        waited on one job): bad input 422, an unknown study 404, a PACS that stays down or a
        worker with another model 503, anything else a server fault."""
        if self.state == DONE:
            return
        message = self.error or self.state
        if self.error_kind == "UnknownIdError":
            raise UnknownIdError(message)
        if self.error_kind == "PacsUnavailableError":
            raise PacsUnavailableError(message)
        if self.error_kind == "ModelMismatch":
            raise ModelUnavailableError(message)
        if self.error_kind in _INPUT_ERRORS:
            raise InputError(message, self.study)
        raise RuntimeError(f"job {self.job_id} on {self.worker or 'a worker'}: {message}")


#: The error kinds of a job that are its input's fault.
_INPUT_ERRORS = frozenset({"InputError", "MissingSequenceError", "UnreadableImageError", "ImageTooLargeError",
                           "InvalidGeometryError", "NonFiniteVoxelsError", "RegistrationError", "InvalidLabelError",
                           "ValueError"})


class TransientError(Exception):
    """A failure that a later try may not have (the PACS is down): the job is retried."""


#: A job whose study's PACS does not answer is tried again after FIRST_RETRY_S, then after twice
#: as long each time (LONGEST_RETRY_S at most), until RETRY_FOR_S have passed in all.
RETRY_FOR_S, FIRST_RETRY_S, LONGEST_RETRY_S = 300.0, 2.0, 30.0


def retry_delay_s(tries_so_far: int) -> float | None:
    """The wait before the next try after ``tries_so_far`` failed ones, None once retrying is over."""
    waited_s = sum(min(FIRST_RETRY_S * 2 ** n, LONGEST_RETRY_S) for n in range(tries_so_far))
    return None if waited_s >= RETRY_FOR_S else min(FIRST_RETRY_S * 2 ** tries_so_far, LONGEST_RETRY_S)


def given_up(spec: JobSpec, exc: BaseException, worker: str) -> JobOutcome:
    """The outcome of a job whose retries are over."""
    return JobOutcome(spec.job_id, spec.ref.study, FAILED, error=f"{exc} (retried for {RETRY_FOR_S:.0f} s)",
                      error_kind="PacsUnavailableError", worker=worker)


class ModelMismatch(InputError):
    """The worker serves another model version than the job asks for."""


def result_key(fingerprint: str, model_version: str, pipeline: Mapping[str, Any]) -> str:
    """The cache key of a result: the study's input (:meth:`StudyDatastore.input_fingerprint`),
    the model version and the pipeline's parameters. Same key, same label."""
    text = json.dumps({"input": fingerprint, "model": model_version, "pipeline": pipeline}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def job_id_for(key: str, destination: str) -> str:
    """A job id that depends only on what is computed and where it goes: a resubmitted or
    redelivered job has the same id, so its label is stored once."""
    return hashlib.sha256(f"{key}|{destination}".encode()).hexdigest()[:32]


def summary_measurements(label: sitk.Image, brain: sitk.Image | None) -> dict[str, Any]:
    """The cohort table's measurements of a label: % of the brain per region, lesion counts,
    hemisphere and midline crossing (:func:`lib.report.measure.measure`; ``brain``: the
    skull-stripped t1c, None for a 4-channel study: then no brain-relative figures)."""
    found = measure(label, brain)
    return {"percent_of_brain": found.percent_of_brain, "brain_ml": found.brain_ml,
            "lesions": len(found.lesions), "enhancing_lesions": len(found.enhancing_lesions),
            "hemisphere": found.hemisphere, "crosses_midline": found.crosses_midline}


class Workbench:
    """What a worker process keeps between jobs: its segmenter (the model loaded once) and the
    datastores it has opened (``conf`` as for :func:`lib.datastore.open_datastore`)."""

    def __init__(self, segmenter: TumorSegmenter, conf: Mapping[str, str] | None = None,
                 name: str | None = None, stores: Mapping[str, StudyDatastore] | None = None) -> None:
        """``stores``: datastores already open, by address (the caller's own, in-process)."""
        self.segmenter, self.conf = segmenter, dict(conf or {})
        self.name = name or socket.gethostname()
        self._stores: dict[str, StudyDatastore] = dict(stores or {})
        self._lock = threading.Lock()

    def store(self, source: str) -> StudyDatastore:
        with self._lock:
            if source not in self._stores:
                self._stores[source] = open_datastore(source, self.conf)
            return self._stores[source]

    def run(self, spec: JobSpec, cancelled: Callable[[], bool] = lambda: False) -> JobOutcome:
        """Do the job. Bad input (a missing sequence, a corrupt file, an unknown study, another
        model version) is a failed outcome naming the problem; a PACS that does not answer
        raises :class:`TransientError` (retry later); anything else is a failed outcome too."""
        started = time.monotonic()
        outcome = JobOutcome(spec.job_id, spec.ref.study, FAILED, worker=self.name, host=socket.gethostname())
        try:
            if cancelled():
                outcome.state, outcome.error = CANCELLED, "cancelled before it started"
                return outcome
            store = self.store(spec.ref.source)
            path = store.study_path(spec.ref.study)
            served = self.segmenter.checkpoint().version
            if spec.model_version is not None and served != spec.model_version:
                raise ModelMismatch(f"worker {self.name} serves model {served}, the job asks for "
                                    f"{spec.model_version}", spec.ref.study)
            result = self.segmenter.segment(path, spec.ref.study)
            files = find_case_files(path, spec.ref.study)
            brain = sitk.ReadImage(str(files.sequences[REFERENCE_SEQUENCE])) if files.sequences else None
            outcome.measurements = summary_measurements(result.label, brain)
            outcome.label_nii_gz = _nifti_bytes(result.label)
            outcome.state, outcome.model_version = DONE, result.model_version
            outcome.volumes_ml, outcome.notes, outcome.stage_seconds = result.volumes_ml, result.notes, result.seconds
        except PacsUnavailableError as exc:
            raise TransientError(str(exc)) from exc
        except (InputError, UnknownIdError, ValueError) as exc:
            outcome.error, outcome.error_kind = _message(exc), type(exc).__name__
        except Exception as exc:  # a fault of this job: the cohort goes on
            logger.exception("job %s (%s) failed", spec.job_id, spec.ref.study)
            outcome.error, outcome.error_kind = f"internal error: {type(exc).__name__}: {exc}"[:500], type(exc).__name__
        outcome.seconds = round(time.monotonic() - started, 3)
        return outcome


def _message(exc: BaseException) -> str:
    """Why a job failed, without the study's id (its row names it) or a folder of this host."""
    if isinstance(exc, InputError):
        return f"{Path(exc.path).name}: {exc.problem}" if exc.path else exc.problem
    return str(exc.args[0]) if isinstance(exc, LookupError) and exc.args else str(exc)


def _nifti_bytes(label: sitk.Image) -> bytes:
    with tempfile.TemporaryDirectory(prefix="btl-job-") as folder:
        path = Path(folder) / "label.nii.gz"
        sitk.WriteImage(label, str(path), useCompression=True)
        return path.read_bytes()
