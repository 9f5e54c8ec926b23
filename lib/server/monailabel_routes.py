"""MONAI Label's REST surface, as its official client, its Slicer plugin and this project's Slicer
module call it: info, inference, the datastore, active learning and training.

Every handler is this server's own (none of MONAI Label's endpoint functions is mounted): it
runs in a worker thread, off the event loop; it takes ids, never server paths (an upload is
saved by the server in a folder of its own and removed when the request ends); uploads are
checked from their header before any voxel is decoded; inferences and uploads wait in bounded
queues (503 with ``Retry-After`` past them); what a request changes is audited as the token's
user; typed errors become 4xx answers (:mod:`lib.server.errors`).
"""

from __future__ import annotations

import json
import logging
from enum import StrEnum
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from monailabel.endpoints.train import stop as stop_training
from monailabel.interfaces.exception import MONAILabelException
from monailabel.utils.async_tasks.task import AsyncTask
from requests_toolbelt import MultipartEncoder

from lib.datastore.base import FINAL, ORIGINAL
from lib.errors import ConflictError, InputError, UnknownIdError
from lib.options import as_flag
from lib.trainers.config import TrainConfig
from lib.transforms.io import check_declared_size

from .context import Actor, ServedApp, json_form, served, submission
from .errors import http_errors
from .limits import WorkQueue
from .settings import ServerSettings
from .uploads import received

logger = logging.getLogger(__name__)

#: How long ``DELETE /train/`` waits for the stopped trainer to exit.
STOP_WAIT_S = 30.0


class InferOutput(StrEnum):
    """What ``POST /infer/{model}`` answers: the label (NIfTI), the result (JSON), or both
    (multipart, MONAI Label's default)."""

    image = "image"
    json = "json"
    all = "all"


class DatastoreOutput(StrEnum):
    stats = "stats"
    all = "all"


def build_router(settings: ServerSettings, auth_off: bool) -> APIRouter:
    """The routes of MONAI Label's REST surface (``auth_off``: a local user may name themselves
    in a submission)."""
    router = APIRouter()
    inference = WorkQueue("inference", settings.inference_workers, settings.inference_queue, typical_s=10)
    uploads = WorkQueue("uploads", settings.label_workers, settings.label_queue, typical_s=5)

    @router.get("/info/", summary="The app: models, labels, strategies, versions")
    def info(btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            return btl.info()

    @router.post("/infer/{model}", summary="Segment a study (by image id) or an uploaded 4-channel file")
    def infer(request: Request, model: str, image: str = "", params: str = Form("{}"),
              file: UploadFile | None = File(None), output: InferOutput = InferOutput.all,
              btl: ServedApp = Depends(served)) -> Response:
        """A study of the datastore by its id (the model output is kept as its next ``original``
        label, unless ``params`` says ``"save_label": false``), or an uploaded 4-channel file
        (nothing is kept)."""
        with http_errors():
            actor = Actor.of(request)
            options = json_form(params)
            if options.get("label_tag", ORIGINAL) != ORIGINAL:
                raise InputError("inference stores model output as 'original'; a 'final' label is a submitted "
                                 "correction")
            if file is not None:
                with received(file) as path:
                    check_declared_size(path, path.name, max_decoded_bytes=settings.max_decoded_bytes)
                    with inference.slot():
                        result = btl.infer_file(model, path)
                return _answer(result, output, "upload")
            if not image:
                raise InputError("give an image id (?image=...) or upload a file")
            keep = as_flag(options.get("save_label", True))
            with inference.slot():
                result = btl.infer_study(model, image, actor.user, save_label=keep)
        if "version" in result:
            actor.audit(btl.audit, "label.save", study=image, tag=ORIGINAL, version=result["version"],
                        detail={"model_version": result["params"].get("model_version")})
        return _answer(result, output, image)

    @router.get("/datastore/", summary="The studies: counts, or every study with its labels")
    def datastore(output: DatastoreOutput = DatastoreOutput.stats, btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            store = btl.studies_store()
            return store.json() if output == DatastoreOutput.all else store.status()

    @router.put("/datastore/", summary="Add a study (one 4-channel image; the official client's upload)",
                include_in_schema=False)
    @router.put("/datastore/image", summary="Add a study (one 4-channel image)")
    def add_image(request: Request, image: str | None = None, params: str = Form("{}"), file: UploadFile = File(...),
                  btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            actor = Actor.of(request)
            info = submission(actor, json_form(params), auth_off).info
            with received(file) as path:
                check_declared_size(path, path.name, max_decoded_bytes=settings.max_decoded_bytes)
                image_id = image or path.name.split(".")[0]
                with uploads.slot():
                    image_id = btl.studies_store().add_image(image_id, str(path), info)
        actor.audit(btl.audit, "image.add", study=image_id)
        return {"image": image_id}

    @router.delete("/datastore/", summary="Remove a study (moved aside, recoverable)")
    def remove_image(request: Request, id: str, btl: ServedApp = Depends(served)) -> dict[str, Any]:  # noqa: A002
        with http_errors():
            actor = Actor.of(request)
            btl.studies_store().remove_image(id)
        btl.search.changed(id)
        actor.audit(btl.audit, "image.remove", study=id)
        return {}

    @router.get("/datastore/image", summary="A study's reference image (its t1c, or its 4-channel file)")
    def download_image(image: str, btl: ServedApp = Depends(served)) -> FileResponse:
        with http_errors():
            path = Path(btl.studies_store().get_image_uri(image))
        return FileResponse(path, media_type="application/gzip", filename=f"{image}{_extension(path)}")

    @router.get("/datastore/image/info", summary="A study's record: sequences, layout, problem")
    def image_info(image: str, btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            return btl.studies_store().get_image_info(image)

    @router.get("/datastore/label", summary="The newest version of a study's label (NIfTI)")
    def download_label(label: str, tag: str, btl: ServedApp = Depends(served)) -> FileResponse:
        with http_errors():
            path = Path(btl.studies_store().get_label_uri(label, tag))
        return FileResponse(path, media_type="application/gzip", filename=f"{label}-{tag}.nii.gz")

    @router.get("/datastore/label/info", summary="The record of the newest version of a study's label")
    def label_info(label: str, tag: str, btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            return btl.studies_store().get_label_info(label, tag)

    @router.put("/datastore/label", summary="Submit a label (a correction) for a study")
    def save_label(request: Request, image: str, params: str = Form("{}"), tag: str = FINAL,
                   label: UploadFile = File(...), btl: ServedApp = Depends(served)) -> dict[str, Any]:
        """The record keeps what the submitter says, less what only the server records (the user
        is the token's; the model output corrected and its model version are the store's)."""
        with http_errors():
            actor = Actor.of(request)
            if tag == ORIGINAL:
                raise InputError("'original' labels are the model's output; submit corrections as 'final'")
            said = submission(actor, json_form(params), auth_off)
            with received(label, "label.nii.gz") as path:
                check_declared_size(path, path.name, max_decoded_bytes=settings.max_decoded_bytes)
                with uploads.slot():
                    saved = btl.studies_store().add_label(image, str(path), tag or FINAL, said.info,
                                                          original_version=said.original_version)
            if saved.info["tag"] == FINAL:
                btl.leases.release(image)  # the annotator is done with it
        btl.search.changed(image)
        actor.audit(btl.audit, "label.save", study=image, tag=saved.info["tag"], version=saved.version)
        return {"image": image, "label": image, "tag": saved.info["tag"], "version": saved.version}

    @router.put("/datastore/label/info", summary="Amend a label's record (a new version)")
    def amend_label(request: Request, label: str, tag: str, params: str = Form("{}"),
                    btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            actor = Actor.of(request)
            store = btl.studies_store()
            store.update_label_info(label, tag, submission(actor, json_form(params), auth_off).info)
            version = store.latest_label(label, tag).version
        btl.search.changed(label)
        actor.audit(btl.audit, "label.amend", study=label, tag=tag, version=version)
        return {"label": label, "tag": tag, "version": version}

    @router.delete("/datastore/label", summary="Remove a label (moved aside, recoverable)")
    def remove_label(request: Request, id: str, tag: str, btl: ServedApp = Depends(served)) -> dict[str, Any]:  # noqa: A002
        with http_errors():
            actor = Actor.of(request)
            btl.studies_store().remove_label(id, tag)
        btl.search.changed(id)
        actor.audit(btl.audit, "label.remove", study=id, tag=tag)
        return {}

    @router.get("/datastore/dataset", summary="Every study with a final label and its newest label, as a zip")
    def dataset(request: Request, limit_cases: int | None = None, btl: ServedApp = Depends(served)) -> FileResponse:
        with http_errors():
            actor = Actor.of(request)
            path = btl.studies_store().get_dataset_archive(limit_cases)
        actor.audit(btl.audit, "dataset.download", detail={"limit_cases": limit_cases})
        return FileResponse(path, media_type="application/zip", filename="dataset.zip")

    @router.post("/activelearning/{strategy}", summary="The next study to annotate (leased to this client)")
    def next_sample(request: Request, strategy: str, params: dict[str, Any] | None = None,
                    btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            actor = Actor.of(request)
            client_id = str((params or {}).get("client_id") or actor.user)[:128]
            try:
                chosen = btl.next_sample({"strategy": strategy, "client_id": client_id})
            except MONAILabelException as exc:  # MONAI Label's word for an unknown strategy
                raise UnknownIdError(exc.msg) from None
            if not chosen.get("id"):
                return {}
            study = str(chosen["id"])
            answer = {**btl.studies_store().get_image_info(study), "id": study}
        actor.audit(btl.audit, "study.lease", study=study, detail={"strategy": strategy, "client_id": client_id})
        return answer

    @router.get("/train/", summary="Training status")
    def train_status(all: bool = False, check_if_running: bool = False) -> Any:  # noqa: A002 - MONAI Label's name
        result, detail = AsyncTask.status("train", all, check_if_running)
        if result is None:
            with http_errors():
                raise UnknownIdError(str(detail))
        return result

    def start_training(request: Request, btl: ServedApp, model: str, options: dict[str, Any], run_sync: bool) -> Any:
        actor = Actor.of(request)
        TrainConfig.from_request(options)
        trainer = btl.trainer(model)
        trainer.lock.check_free()
        if not btl.studies_store().get_labeled_images(FINAL):
            raise ConflictError("no study has a final label yet: nothing to train on; submit corrections first")
        result, detail = AsyncTask.run("train", request={"model": model}, params=options, force_sync=run_sync,
                                       enqueue=False)
        if result is None:
            raise ConflictError(str(detail))
        actor.audit(btl.audit, "train.start", detail={"model": model, "options": options})
        return result

    @router.post("/train/{model}", summary="Train a model on the submitted labels")
    def train(request: Request, model: str, params: dict[str, Any] | None = None, run_sync: bool = False,
              btl: ServedApp = Depends(served)) -> Any:
        """Options are checked now (422); one training at a time, also across restarts, and only
        when a study has a final label to learn from (409)."""
        with http_errors():
            return start_training(request, btl, model, dict(params or {}), run_sync)

    @router.post("/train/", summary="Train every model (MONAI Label's client: options per model)")
    def train_all(request: Request, params: dict[str, Any] | None = None, run_sync: bool = False,
                  btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            options = dict(params or {})
            return {trainer.name: start_training(request, btl, trainer.name, dict(options.get(trainer.name) or {}),
                                                 run_sync) for trainer in btl.trainers()}

    @router.delete("/train/", summary="Stop the running training")
    def stop(request: Request, btl: ServedApp = Depends(served)) -> Any:
        """Kills the trainer and answers once it has exited, so that a training can start again
        straight away (MONAI Label reports STOPPED as soon as the signal is sent)."""
        with http_errors():
            actor = Actor.of(request)
        result = stop_training()
        for trainer in btl.trainers():
            if not trainer.lock.wait_released(timeout_s=STOP_WAIT_S):
                logger.warning("the stopped trainer of %s still holds %s after %s s", trainer.name,
                               trainer.lock.path, STOP_WAIT_S)
        actor.audit(btl.audit, "train.stop")
        return result

    return router


def _extension(path: Path) -> str:
    name = path.name.lower()
    return next((ext for ext in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd") if name.endswith(ext)), path.suffix)


def _answer(result: dict[str, Any], output: InferOutput, name: str) -> Response:
    """The inference's answer, MONAI Label's way; its label file is read and removed here."""
    label_file = Path(result["file"])
    try:
        label = label_file.read_bytes() if output != InferOutput.json else b""
    finally:
        label_file.unlink(missing_ok=True)
    params = result["params"]
    if output == InferOutput.json:
        return JSONResponse(params)
    filename = f"{name}-label.nii.gz"
    if output == InferOutput.image:
        return Response(label, media_type="application/gzip",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    body = MultipartEncoder(fields={"params": (None, json.dumps(params), "application/json"),
                                    "image": (filename, label, "application/gzip")})
    return Response(content=body.to_string(), media_type=body.content_type)
