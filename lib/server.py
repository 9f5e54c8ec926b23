"""The ASGI application the server runs: MONAI Label's FastAPI app, made fit for a hospital.

``btl-server`` (and ``make run``) start MONAI Label with ``--uvicorn_app lib.server:app``. On
top of MONAI Label's routes this module adds, in one visible place:

- authentication and roles in front of every route (:mod:`lib.auth`; ``BTL_AUTH=off`` is
  allowed on a loopback address only, and said loudly);
- a bound on request bodies (413) before anything is read into memory;
- the app's own routes (:mod:`lib.api`: a study's sequences, label versions, the audit log);
- its own handlers for the routes that write or compute (infer, save/amend/remove a label,
  add/remove a study, start/stop training). They run in worker threads, off the event loop;
  inference waits in a bounded queue and is answered 503 with ``Retry-After`` when the queue
  is full; the user who did it is the authenticated one, and it goes into the audit trail.
  Routes registered first answer first, so these replace MONAI Label's same-path routes;
- typed errors and malformed JSON answered 4xx with the reason, never a bare 500.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, BackgroundTasks, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from monailabel.app import app
from monailabel.endpoints.infer import ResultType, send_response
from monailabel.endpoints.train import stop as stop_training
from monailabel.interfaces.exception import MONAILabelError, MONAILabelException
from monailabel.interfaces.utils.app import app_instance
from monailabel.utils.async_tasks.task import AsyncTask
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from lib.api import ApiContext, build_router
from lib.audit import AuditEvent
from lib.auth import AuthenticationError, AuthMiddleware, AuthSettings, Principal, TokenVerifier, loopback_only
from lib.datastore.base import FINAL, ORIGINAL
from lib.errors import ConflictError, InputError
from lib.http_errors import http_errors, http_status
from lib.trainers.config import TrainConfig

logger = logging.getLogger(__name__)
STOP_WAIT_S = 30.0  # how long DELETE /train/ waits for the killed trainer to exit


@dataclass(frozen=True)
class ServerSettings:
    """``BTL_INFERENCE_WORKERS`` inferences at a time (default 1: a CPU server is saturated by
    one), ``BTL_INFERENCE_QUEUE`` more may wait (default 4), ``BTL_MAX_UPLOAD_MB`` bounds a
    request body (default 1024)."""

    inference_workers: int = 1
    inference_queue: int = 4
    max_upload_mb: float = 1024.0

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> ServerSettings:
        env = dict(os.environ if environ is None else environ)
        return cls(int(env.get("BTL_INFERENCE_WORKERS", cls.inference_workers)),
                   int(env.get("BTL_INFERENCE_QUEUE", cls.inference_queue)),
                   float(env.get("BTL_MAX_UPLOAD_MB", cls.max_upload_mb)))


class QueueFull(Exception):
    """Every worker is busy and the queue is full: 503, try again in ``retry_after_s``."""

    def __init__(self, what: str, retry_after_s: int) -> None:
        super().__init__(f"the server is busy with {what}; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class WorkQueue:
    """At most ``workers`` jobs run at once and ``queue`` wait; one more is refused at once."""

    def __init__(self, name: str, workers: int, queue: int, typical_s: float) -> None:
        self.name, self.typical_s = name, typical_s
        self._running = threading.Semaphore(workers)
        self._admitted = threading.Semaphore(workers + queue)

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._admitted.acquire(blocking=False):
            raise QueueFull(self.name, max(1, round(self.typical_s)))
        try:
            with self._running:
                yield
        finally:
            self._admitted.release()


class BodyLimit:
    """ASGI middleware: a request body larger than ``max_bytes`` is answered 413, by its
    Content-Length before anything is read, or as soon as a streamed body passes the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, f"request body over {self.max_bytes // 2**20} MB")
            return message
        await self.app(scope, counted, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse({"detail": f"request body over {self.max_bytes // 2**20} MB"}, status_code=413)
        await response(scope, receive, send)


SETTINGS = ServerSettings.from_environment()
AUTH = AuthSettings.from_environment()
VERIFIER = TokenVerifier(AUTH) if AUTH.mode == "oidc" else None
INFERENCE = WorkQueue("inference", SETTINGS.inference_workers, SETTINGS.inference_queue, typical_s=10)


def _server_host(argv: list[str]) -> str:
    """The address ``monailabel start_server`` binds (its ``--host``; MONAI Label's default is all)."""
    for i, arg in enumerate(argv):
        if arg in ("--host", "-i") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--host="):
            return arg.split("=", 1)[1]
    return "0.0.0.0"


def _check_auth_mode(settings: AuthSettings, host: str) -> None:
    """Authentication off is for a single-user laptop: loopback only, and said loudly."""
    if settings.mode != "off":
        logger.info("authentication: OpenID Connect tokens from %s for audience %s", settings.issuer,
                    settings.audience)
        return
    if not loopback_only(host):
        raise SystemExit(f"refusing to serve {host} without authentication: set BTL_OIDC_ISSUER and "
                         "BTL_OIDC_AUDIENCE, or bind 127.0.0.1 (--host 127.0.0.1) for a single user")
    banner = "AUTHENTICATION IS OFF: every request is an administrator. Loopback only, for one user on this computer."
    logger.warning(banner)
    print(f"\n*** {banner} ***\n", file=sys.stderr, flush=True)


# ---- the application
_check_auth_mode(AUTH, _server_host(sys.argv))
# innermost first after MONAI Label's CORS middleware: browsers must see 401/403 with CORS headers
app.user_middleware.append(Middleware(AuthMiddleware, settings=AUTH, verifier=VERIFIER))
app.user_middleware.append(Middleware(BodyLimit, max_bytes=int(SETTINGS.max_upload_mb * 2**20)))


def _studies() -> Any:
    return app_instance().studies_store()


def _principal(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    assert principal is not None, "the route is public: it has no user"
    return principal


def _client(request: Request) -> str:
    host = request.client.host if request.client else "?"
    name = request.headers.get("x-client-name", "")
    return f"{host} {name}".strip()


def _audit(request: Request, action: str, **fields: Any) -> None:
    app_instance().audit.record(AuditEvent(user=_principal(request).user, action=action, client=_client(request),
                                           **fields))


def _json_form(value: str, what: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value) if value else {}
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(parsed, dict):
        raise InputError(f"{what} must be a JSON object, got {type(parsed).__name__}")
    return parsed


def _saved_upload(upload: UploadFile, tasks: BackgroundTasks) -> str:
    suffix = "".join(Path(upload.filename or "upload.nii.gz").suffixes)[-16:] or ".nii.gz"
    fd, path = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(upload.file, out)
    tasks.add_task(os.unlink, path)
    return path


def _user_info(request: Request, params: dict[str, Any]) -> dict[str, Any]:
    """Who saved it: the authenticated user; with authentication off, the name the client gave."""
    principal = _principal(request)
    user = params.get("user") if AUTH.mode == "off" and params.get("user") else principal.user
    return {**params, "user": str(user), "client": _client(request)}


overrides = APIRouter()


@overrides.get("/auth/", summary="Whether the server requires a login, and with which provider")
def auth_info() -> dict[str, Any]:
    return {"enabled": AUTH.mode == "oidc", "issuer": AUTH.issuer, "audience": AUTH.audience,
            "client_id": AUTH.client_id}


@overrides.post("/auth/token", summary="Log in with a user name and password (the provider's password grant)")
def login(username: str = Form(...), password: str = Form(...)) -> dict[str, Any]:
    """For clients without a browser (3D Slicer): the server asks the identity provider for a
    token with the password grant, where the provider allows it (Keycloak does). A refusal is
    a 401 with the provider's reason; the password is neither logged nor returned."""
    if VERIFIER is None:
        return {"access_token": None, "token_type": None}
    try:
        endpoint = str(VERIFIER.provider_metadata()["token_endpoint"])
    except (AuthenticationError, KeyError) as exc:
        raise HTTPException(503, f"the identity provider cannot be reached: {exc}") from None
    form = {"grant_type": "password", "username": username, "password": password, "scope": "openid",
            "client_id": AUTH.client_id or ""}
    request = urllib.request.Request(endpoint, data=urllib.parse.urlencode(form).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=AUTH.timeout_s) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as error:
        reason = _provider_reason(error.read())
        raise HTTPException(401, f"login refused by the identity provider{': ' + reason if reason else ''}",
                            headers={"WWW-Authenticate": "Bearer"}) from None
    except OSError as error:
        raise HTTPException(503, f"the identity provider cannot be reached ({type(error).__name__})") from None
    return {"access_token": answer.get("access_token"), "token_type": answer.get("token_type", "Bearer"),
            "expires_in": answer.get("expires_in")}


def _provider_reason(body: bytes) -> str:
    try:
        answer = json.loads(body)
    except ValueError:
        return ""
    return str(answer.get("error_description") or answer.get("error") or "")[:200] if isinstance(answer, dict) else ""


@overrides.post("/infer/{model}", summary="Segment a study (by image id) or an uploaded 4-channel file")
def infer(request: Request, background: BackgroundTasks, model: str, image: str = "", params: str = Form("{}"),
          file: UploadFile = File(None), output: ResultType | None = None) -> Any:
    """One inference at a time per worker; the rest wait in the queue or get 503."""
    with http_errors():
        options = _json_form(params, "params")
        if options.get("label_tag", ORIGINAL) != ORIGINAL:
            raise InputError("inference stores model output as 'original'; a 'final' label is a submitted correction")
        if not image and file is None:
            raise InputError("give an image id (?image=...) or upload a file")
        req = {**options, "model": model, "image": image, "user": _principal(request).user}
        if file is not None:
            req.update({"image": _saved_upload(file, background), "uploaded": True})
        with INFERENCE.slot():
            result = app_instance().infer(req)
    if not req.get("uploaded"):
        _audit(request, "label.save", study=image, tag=ORIGINAL, version=result.get("version"),
               detail={"model_version": result.get("params", {}).get("model_version")})
    return send_response(app_instance().datastore(), result, output, background)


@overrides.put("/datastore/label", summary="Submit a label (a correction) for a study")
def save_label(request: Request, background: BackgroundTasks, image: str, params: str = Form("{}"),
               tag: str = FINAL, label: UploadFile = File(...)) -> dict[str, Any]:
    with http_errors():
        if tag == ORIGINAL:
            raise InputError("'original' labels are the model's output; submit corrections as 'final'")
        info = _user_info(request, _json_form(params, "params"))
        saved = _studies().add_label(image, _saved_upload(label, background), tag or FINAL, info)
        if saved.info["tag"] == FINAL:
            app_instance().leases.release(image)  # the annotator is done with it
    _audit(request, "label.save", study=image, tag=saved.info["tag"], version=saved.version)
    return {"image": image, "label": image, "tag": saved.info["tag"], "version": saved.version}


@overrides.put("/datastore/label/info", summary="Amend a label's record (a new version)")
def amend_label(request: Request, label: str, tag: str, params: str = Form("{}")) -> dict[str, Any]:
    with http_errors():
        store = _studies()
        store.update_label_info(label, tag, _user_info(request, _json_form(params, "params")))
        version = store.latest_label(label, tag).version
    _audit(request, "label.amend", study=label, tag=tag, version=version)
    return {"label": label, "tag": tag, "version": version}


@overrides.delete("/datastore/label", summary="Remove a label (moved aside, recoverable)")
def remove_label(request: Request, id: str, tag: str) -> dict[str, Any]:  # noqa: A002 - MONAI Label's name
    with http_errors():
        _studies().remove_label(id, tag)
    _audit(request, "label.remove", study=id, tag=tag)
    return {}


@overrides.put("/datastore/image", summary="Add a study (one 4-channel image)")
def add_image(request: Request, background: BackgroundTasks, image: str | None = None, params: str = Form("{}"),
              file: UploadFile = File(...)) -> dict[str, Any]:
    with http_errors():
        info = _user_info(request, _json_form(params, "params"))
        name = Path(file.filename or "").name
        image_id = image or name.split(".")[0]
        image_id = _studies().add_image(image_id, _saved_upload(file, background), info)
    _audit(request, "image.add", study=image_id)
    return {"image": image_id}


@overrides.delete("/datastore/", summary="Remove a study (moved aside, recoverable)")
def remove_image(request: Request, id: str) -> dict[str, Any]:  # noqa: A002 - MONAI Label's name
    with http_errors():
        _studies().remove_image(id)
    _audit(request, "image.remove", study=id)
    return {}


@overrides.post("/train/{model}", summary="Train a model on the submitted labels")
def train(request: Request, model: str, params: dict[str, Any] | None = None, run_sync: bool = False) -> Any:
    """Options are checked now (422); one training at a time, also across restarts, and only
    when a study has a final label to learn from (409)."""
    with http_errors():
        options = dict(params or {})
        TrainConfig.from_request(options)
        trainer = app_instance().trainer(model)
        trainer.lock.check_free()
        if not _studies().get_labeled_images(FINAL):
            raise ConflictError("no study has a final label yet: nothing to train on; submit corrections first")
        result, detail = AsyncTask.run("train", request={"model": model}, params=options, force_sync=run_sync,
                                       enqueue=False)
        if result is None:
            raise ConflictError(str(detail))
    _audit(request, "train.start", detail={"model": model, "options": options})
    return result


@overrides.delete("/train/", summary="Stop the running training")
def stop(request: Request) -> Any:
    """Kills the trainer and answers once it has exited, so that a training can start again
    straight away (MONAI Label reports STOPPED as soon as the signal is sent)."""
    result = stop_training()
    for trainer in app_instance().trainers():
        if not trainer.lock.wait_released(timeout_s=STOP_WAIT_S):
            logger.warning("the stopped trainer of %s still holds %s after %s s", trainer.name, trainer.lock.path,
                           STOP_WAIT_S)
    _audit(request, "train.stop")
    return result


# the app's own routes, and these handlers, answer before MONAI Label's routes of the same path
def _user(request: Request) -> str:
    return _principal(request).user


app.include_router(build_router(ApiContext(studies=_studies, audit=lambda: app_instance().audit,
                                           reports=lambda: app_instance().reports,
                                           effort=lambda: app_instance().effort,
                                           uncertainty=lambda: app_instance().uncertainty_status(),
                                           models=lambda: app_instance().model_versions(),
                                           serve_model=lambda *a: app_instance().serve_model(*a),
                                           record=_audit, user=_user)))
app.include_router(overrides)
_ours = [app.router.routes.pop(), app.router.routes.pop()]  # the two routers just included
app.router.routes[:0] = _ours


@app.exception_handler(QueueFull)
async def _busy(request: Request, exc: QueueFull) -> Response:
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(exc.retry_after_s)})


@app.exception_handler(RequestValidationError)
async def _invalid(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's 422, without echoing the input (it may be huge, not JSON-safe like 1e999, or a
    password)."""
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


@app.exception_handler(json.JSONDecodeError)
async def _malformed(request: Request, exc: json.JSONDecodeError) -> Response:
    return JSONResponse({"detail": f"malformed JSON in the request ({exc.msg})"}, status_code=422)


@app.exception_handler(MONAILabelException)
async def _monailabel(request: Request, exc: MONAILabelException) -> Response:
    """MONAI Label's own errors: an unknown strategy or model is the client's to fix."""
    if exc.error == MONAILabelError.APP_INIT_ERROR:
        return JSONResponse({"detail": exc.msg}, status_code=404)
    logger.error("%s: %s", exc.error, exc.msg)
    return JSONResponse({"detail": exc.msg}, status_code=500)


def _typed(request: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": str(exc)}, status_code=http_status(exc) or 500)


for _error in (InputError, LookupError, ConflictError):
    app.add_exception_handler(_error, _typed)
