"""BrainTumorLabel: the MONAI Label app that segments brain tumors from four MRI sequences.

Start it with ``btl-server --studies <folder>`` (or ``make run``): the application of
``lib/server/`` serves it (MONAI Label's own application is refused, see
:meth:`BrainTumorLabelApp.on_init_complete`). One image id is one study (a case folder in BraTS naming, or a 4-channel
NIfTI); see ``lib/datastore/study_folder.py``. The work happens in ``lib/``; the classes
here only wire it into MONAI Label.

``--studies http://host:port/dicom-web`` serves the MR studies of a DICOMweb PACS instead,
one image id per study, with labels written back as DICOM SEG (``lib/datastore/dicomweb.py``);
credentials come from the environment (``BTL_PACS_USERNAME``, ``BTL_PACS_PASSWORD``) or a file.

Config (``--conf key value``):
  model_dir           where trained models are published (default <studies>/.braintumorlabel/model)
  cache_dir           PACS only: volumes, labels and the outbox (default ~/.cache/braintumorlabel/<pacs>)
  pacs_credentials_file  PACS only: a file holding username:password
  pacs_study_filter   PACS only: JSON of QIDO-RS study keys that narrow the MR studies served,
                      e.g. '{"StudyDate": "20260101-", "StudyDescription": "*BRAIN*"}'
  import_case_labels  "true": a case folder's <id>-seg file counts as its final label
  mirror_axes         test-time flips, e.g. "0" (left-right); default none
  lease_s             how long a study next_sample gave a client stays with it (default 3600 s;
                      it ends earlier when the study's final label is saved)
  train_extra_cases   folder(s) of labelled cases every training run also trains on (never
                      validated on), separated by ':', e.g. the real and generated training set
                      the served classifier was trained on; default none
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask

from lib.activelearning.effort import EffortTable
from lib.activelearning.leases import DEFAULT_LEASE_S, LeaseBook
from lib.activelearning.strategies import FirstStudy, ForegroundRandomStudy, MostUncertainStudy, RandomStudy
from lib.activelearning.uncertainty import BackgroundScorer, ScoreBook
from lib.brats import LABEL_NAMES
from lib.compat import highdicom_on_numpy2
from lib.datastore import open_datastore
from lib.datastore.base import ORIGINAL, StudyDatastore
from lib.datastore.study_folder import META_DIR
from lib.errors import ModelUnavailableError, UnknownIdError
from lib.infers.pipeline import TumorSegmenter
from lib.infers.task import BrainTumorSegmentation
from lib.jobs.broker import CeleryRunner
from lib.jobs.cli import pipeline_parameters
from lib.jobs.cohort import Plan
from lib.jobs.runners import InProcessRunner
from lib.jobs.service import CohortService, JobSettings
from lib.jobs.shared import SharedRunner
from lib.jobs.work import JobSpec, StudyRef, Workbench
from lib.model import PredictionSettings
from lib.model.registry import ModelRegistry, served_checkpoints
from lib.options import as_flag
from lib.report.service import ReportService
from lib.report.store import ReportStore
from lib.search.service import SearchService
from lib.server.audit import AuditLog
from lib.trainers.task import BrainTumorTraining

logger = logging.getLogger(__name__)


def _package_version() -> str:
    try:
        return importlib.metadata.version("braintumorlabel")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


MODEL_NAME = "brats_segresnet"
#: The package's version (pyproject.toml), what GET /info/ reports.
APP_VERSION = _package_version()



class BrainTumorLabelApp(MONAILabelApp):
    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        # MONAI Label's background processes (training, batch) build the app without btl-server's main
        highdicom_on_numpy2()
        self._guarded = False  # set by start_serving
        self.job_settings = JobSettings.from_environment()
        self.bundled_model = Path(app_dir) / "model" / f"{MODEL_NAME}.pt"
        local = not studies.startswith(("http://", "https://"))
        default_dir = Path(studies) / META_DIR / "model" if local else Path(app_dir) / "model" / "trained"
        self.model_dir = Path(conf.get("model_dir", default_dir))
        self.trained_model = self.model_dir / f"{MODEL_NAME}.pt"
        self.registry = ModelRegistry(self.model_dir, self.trained_model, self.bundled_model)
        self.registry.versions()  # registers the bundled model as the first one served
        mirror = tuple(int(a) for a in str(conf.get("mirror_axes", "")).split(",") if a.strip())
        self.segmenter = TumorSegmenter(served_checkpoints(self.trained_model, self.bundled_model),
                                        PredictionSettings(mirror_axes=mirror))
        state_dir = Path(studies) / META_DIR if local else \
            Path(conf.get("cache_dir") or Path(app_dir) / "model" / "trained")
        self.audit = AuditLog(state_dir)
        self.effort = EffortTable(state_dir / "effort.json")
        self.scores = ScoreBook(state_dir / "uncertainty.json")
        self.leases = LeaseBook(state_dir / "leases.json", float(conf.get("lease_s", DEFAULT_LEASE_S)))
        super().__init__(app_dir=app_dir, studies=studies, conf=conf, name="BrainTumorLabel",
                         description="Brain tumor segmentation (NCR, ED, ET) from t1n, t1c, t2w, t2f",
                         version=APP_VERSION, labels={"NCR": 1, "ED": 2, "ET": 3})

    def init_datastore(self) -> Datastore:
        """The study datastore (a folder, or a DICOMweb PACS): :func:`lib.datastore.open_datastore`."""
        return open_datastore(self.studies, self.conf)

    def studies_store(self) -> StudyDatastore:
        """The app's study datastore."""
        store = self.datastore()
        if not isinstance(store, StudyDatastore):
            raise TypeError(f"{type(store).__name__} is not a study datastore")
        return store

    def start_serving(self) -> None:
        """Server start by the guarded application (:mod:`lib.server`), in place of MONAI Label's
        own: it passes that it enforces authentication, roles and limits."""
        self._guarded = True
        self.server_mode(True)
        self.on_init_complete()
        self.cohorts.resume_unfinished()
        self.search.start()

    def on_init_complete(self) -> None:
        """Server start. Only the application of :mod:`lib.server` (``btl-server``) enforces
        authentication, roles and limits, so a server started otherwise (``monailabel
        start_server`` with MONAI Label's own application) stops here with a message; the store
        starts its background work (a PACS store sends the labels saved while the PACS was down)."""
        super().on_init_complete()
        if not self._guarded and os.environ.get("BTL_ALLOW_UNGUARDED_SERVER") != "1":
            raise SystemExit("start the server with `btl-server --studies ...`: it adds authentication, roles and "
                             "limits; MONAI Label's own application serves every route to anyone "
                             "(BTL_ALLOW_UNGUARDED_SERVER=1 runs it anyway, for benchmarks on loopback)")
        self.studies_store().start_background_work()

    def init_infers(self) -> dict[str, InferTask]:
        return {MODEL_NAME: BrainTumorSegmentation(self.segmenter)}

    def init_trainers(self) -> dict[str, TrainTask]:
        return {MODEL_NAME: BrainTumorTraining(self.trained_model, self.model_dir, self.segmenter.checkpoint_path,
                                               self.registry, name=MODEL_NAME,
                                               extra_cases=self.conf.get("train_extra_cases") or None)}

    @functools.cached_property
    def reports(self) -> ReportService:
        """The clinical reports of the studies, kept next to the audit trail."""
        return ReportService(self.studies_store(), ReportStore(self.audit.path.parent / "reports"))

    @functools.cached_property
    def search(self) -> SearchService:
        """Case search over the segmented studies; its index lives next to the audit trail."""
        return SearchService(self.studies_store(), self.reports.store, self.segmenter.checkpoint,
                             self.audit.path.parent / "search")

    def trainer(self, model: str) -> BrainTumorTraining:
        task = self._trainers.get(model)
        if not isinstance(task, BrainTumorTraining):
            raise UnknownIdError(f"unknown model '{model}'; available: {sorted(self._trainers)}")
        return task

    def trainers(self) -> list[BrainTumorTraining]:
        """This app's training tasks (each with the lock of its model folder)."""
        return [task for task in self._trainers.values() if isinstance(task, BrainTumorTraining)]

    def info(self) -> dict[str, Any]:
        """MONAI Label's info, plus what the server is serving and why (a model that would not
        load is named in ``model_warning``)."""
        info = super().info()
        if self.segmenter.warning:
            info["model_warning"] = self.segmenter.warning
        return info

    def init_strategies(self) -> dict[str, Strategy]:
        self.scorer = BackgroundScorer(self.segmenter, self.scores,
                                       lambda study: self.studies_store().study_path(study))
        scored = (self.leases, self.scores, self.scorer, lambda: self.segmenter.checkpoint().version)
        return {"random": RandomStudy(self.leases), "first": FirstStudy(self.leases),
                "uncertainty": MostUncertainStudy(*scored), "foreground": ForegroundRandomStudy(*scored)}

    def model_versions(self) -> dict[str, Any]:
        """The registry: every version with its metrics and training labels, the one served now
        and the history of what was served when."""
        served = self.segmenter.checkpoint().version
        versions, history = self.registry.snapshot()
        return {"served": served, "versions": [{**asdict(v), "served": v.version == served} for v in versions],
                "history": history}

    def serve_model(self, version: str, user: str, reason: str = "") -> dict[str, Any]:
        """Serve a registered version from the next request on (rollback, or a candidate chosen
        by an admin); refused while a training run is going (it would publish over it)."""
        entry = self.registry.serve(version, user, reason, refuse_if=self.trainer(MODEL_NAME).lock.check_free)
        return {"served": self.segmenter.checkpoint().version, "requested": entry.version}

    def uncertainty_status(self) -> dict[str, Any]:
        """The served model's study scores, and whether scoring is running."""
        version = self.segmenter.checkpoint().version
        return {"model_version": version, "scoring": self.scorer.running,
                "scores": {study: asdict(score) for study, score in self.scores.scores(version).items()}}

    def _infer_task(self, model: str) -> InferTask:
        task = self._infers.get(model)
        if task is None:
            raise UnknownIdError(f"unknown model '{model}'; available: {sorted(self._infers)}")
        return task

    def infer_study(self, model: str, image_id: str, user: str, save_label: bool = True) -> dict[str, Any]:
        """Segment a study of the datastore by its id (never a path on the server: an unknown id
        and a path alike are :class:`UnknownIdError`) and keep the model output as the study's
        next ``original`` label version unless ``save_label`` is false. The result's ``file`` is
        the label (NIfTI on the t1c grid), a temporary file the caller removes."""
        task = self._infer_task(model)
        store = self.studies_store()
        if self.job_settings.broker_url:
            result_file, result_json = self._segment_on_a_worker(image_id)
        else:
            result_file, result_json = task({"image": str(store.study_path(image_id)), "case_id": image_id})
        result: dict[str, Any] = {"label": result_file, "tag": ORIGINAL, "file": result_file, "params": result_json}
        if save_label:
            try:
                saved = store.add_label(image_id, result_file, ORIGINAL,
                                        {"model": model, "volumes_ml": result_json["volumes_ml"], "user": user},
                                        model_version=result_json["model_version"])
            except BaseException:
                Path(result_file).unlink(missing_ok=True)
                raise
            result.update({"label": image_id, "version": saved.version})
            self.search.changed(image_id)  # searchable once its features are computed, in the background
        return result

    def _segment_on_a_worker(self, image_id: str) -> tuple[str, dict[str, Any]]:
        """The study segmented by a job worker (``BTL_BROKER_URL``): the label file and the
        inference's JSON result, as the in-process task gives them."""
        self.studies_store().study_path(image_id)  # an unknown id or an incomplete study: answered here
        view = self.job_runner.view()
        spec = JobSpec(uuid.uuid4().hex, StudyRef(self.studies, image_id))
        view.submit(spec)
        deadline = time.monotonic() + self.job_settings.infer_timeout_s
        while (remaining_s := deadline - time.monotonic()) > 0:
            outcome = next((o for o in view.poll(min(remaining_s, 1.0)) if o.job_id == spec.job_id), None)
            if outcome is None:
                continue
            outcome.raise_for_failure()
            assert outcome.label_nii_gz is not None
            fd, path = tempfile.mkstemp(suffix=".nii.gz", prefix="btl-label-")
            with os.fdopen(fd, "wb") as out:
                out.write(outcome.label_nii_gz)
            return path, {"label_names": {name: value for value, name in LABEL_NAMES.items() if value},
                          "volumes_ml": outcome.volumes_ml, "model_version": outcome.model_version,
                          "device": "worker", "worker": outcome.worker, "latencies": outcome.stage_seconds,
                          "notes": outcome.notes}
        view.cancel([spec.job_id])
        raise ModelUnavailableError(f"no job worker segmented study '{image_id}' within "
                                    f"{self.job_settings.infer_timeout_s:g} s (BTL_JOB_TIMEOUT_S); are the workers "
                                    "running?")

    @functools.cached_property
    def job_runner(self) -> SharedRunner:
        """Where this server's jobs run: the workers of ``BTL_BROKER_URL``, else this process."""
        if self.job_settings.broker_url:
            return SharedRunner(CeleryRunner(self.job_settings.broker_url, self.job_settings.stall_s))
        return SharedRunner(InProcessRunner(Workbench(self.segmenter, self.conf, name="server",
                                                      stores={self.studies: self.studies_store()})))

    @functools.cached_property
    def cohorts(self) -> CohortService:
        """The server's cohorts (``/btl/jobs``), recorded next to the audit trail."""
        return CohortService(self.studies_store(), self.studies, self.audit.path.parent / "jobs", self.job_runner,
                             lambda: Plan(self.segmenter.checkpoint().version, pipeline_parameters(self.segmenter)),
                             on_stored=self.search.changed)

    def infer_file(self, model: str, path: Path) -> dict[str, Any]:
        """Segment a 4-channel file the server received (its name, without extension, names the
        case in errors); nothing is stored. The result's ``file`` is a temporary label file."""
        result_file, result_json = self._infer_task(model)({"image": str(path), "case_id": path.name.split(".")[0]})
        return {"label": result_file, "tag": ORIGINAL, "file": result_file, "params": result_json}

    def infer(self, request: dict[str, Any], datastore: Datastore | None = None) -> dict[str, Any]:
        """MONAI Label's entry (its ``-m infer`` command line): ``request["image"]`` is an image id
        of the datastore (:meth:`infer_study`)."""
        return self.infer_study(str(request.get("model", "")), str(request.get("image") or ""),
                                str(request.get("user", "")), as_flag(request.get("save_label", True)))
