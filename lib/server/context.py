"""What a route works with: the app it serves (:class:`ServedApp`, checked once at start), who
made the request (:class:`Actor`), the audit of what it changed, and the request's own values
(JSON form fields, what a submitter may say about a label)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from fastapi import Request

from lib.datastore.base import PROVENANCE
from lib.errors import InputError

from .audit import AuditEvent, AuditLog
from .auth import Principal

if TYPE_CHECKING:
    from lib.activelearning.effort import EffortTable
    from lib.activelearning.leases import LeaseBook
    from lib.datastore.base import StudyDatastore
    from lib.jobs.service import CohortService
    from lib.report.service import ReportService
    from lib.search.service import SearchService
    from lib.trainers.task import BrainTumorTraining


@runtime_checkable
class ServedApp(Protocol):
    """What the HTTP edge asks of the MONAI Label app (``monailabel_app/main.py``)."""

    audit: AuditLog
    leases: LeaseBook
    effort: EffortTable

    @property
    def cohorts(self) -> CohortService: ...

    @property
    def reports(self) -> ReportService: ...

    @property
    def search(self) -> SearchService:
        """Case search; told of every study whose labels, report or existence change."""

    def start_serving(self) -> None:
        """Server start, by the guarded application (in place of MONAI Label's own start)."""

    def studies_store(self) -> StudyDatastore: ...

    def info(self) -> dict[str, Any]: ...

    def infer_study(self, model: str, image_id: str, user: str, save_label: bool) -> dict[str, Any]:
        """Segment a study of the datastore; the result's ``file`` is a label file the caller removes."""

    def infer_file(self, model: str, path: Path) -> dict[str, Any]:
        """Segment a 4-channel file the server itself received; nothing is stored."""

    def next_sample(self, request: dict[str, Any]) -> dict[str, Any]: ...

    def trainer(self, model: str) -> BrainTumorTraining: ...

    def trainers(self) -> list[BrainTumorTraining]: ...

    def uncertainty_status(self) -> dict[str, Any]: ...

    def model_versions(self) -> dict[str, Any]: ...

    def serve_model(self, version: str, user: str, reason: str = "") -> dict[str, Any]: ...


def served(request: Request) -> ServedApp:
    """The app this request is served by (a FastAPI dependency)."""
    app: ServedApp = request.app.state.btl
    return app


#: What X-Client-Name may hold (it goes into the audit trail): printable, short.
_CLIENT_NAME = re.compile(r"^[A-Za-z0-9 ._()/:+-]{1,64}$")


@dataclass(frozen=True)
class Actor:
    """Who made a request: the authenticated user and the client (address, and the name the
    client gives in ``X-Client-Name``)."""

    user: str
    client: str

    @classmethod
    def of(cls, request: Request) -> Actor:
        """The request's actor; :class:`InputError` for an ``X-Client-Name`` that is not up to 64
        letters, digits, spaces or ``._()/:+-``."""
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None:
            raise RuntimeError("a public route has no actor")
        host = request.client.host if request.client else "?"
        name = request.headers.get("x-client-name")
        if name is not None and not _CLIENT_NAME.fullmatch(name):
            raise InputError("X-Client-Name must be 1 to 64 letters, digits, spaces or ._()/:+- characters")
        return cls(principal.user, f"{host} {name}" if name else host)

    def audit(self, log: AuditLog, action: str, **fields: Any) -> None:
        log.record(AuditEvent(user=self.user, action=action, client=self.client, **fields))


def json_form(value: str, what: str = "params") -> dict[str, Any]:
    """A JSON object from a form field; :class:`InputError` naming the problem otherwise."""
    try:
        parsed = json.loads(value) if value else {}
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(parsed, dict):
        raise InputError(f"{what} must be a JSON object, got {type(parsed).__name__}")
    return parsed


#: What a submitter's ``params`` may not set on a label record: the server's own entries.
SERVER_RECORDED = PROVENANCE | {"user", "client", "model", "volumes_ml"}


@dataclass(frozen=True)
class Submission:
    """What a label submission says: the record entries the submitter may set, and the model
    output version it names as the one it corrects (checked by the store)."""

    info: dict[str, Any]
    original_version: int | None


def submission(actor: Actor, params: dict[str, Any], local_user_may_name_themselves: bool) -> Submission:
    """The record of a label submitted by ``actor``: ``params`` less :data:`SERVER_RECORDED`,
    with the user (the token's; with authentication off, the name the client gives) and the
    client. ``params["original_version"]`` must be an integer when given."""
    named = params.get("original_version")
    if named is not None and (isinstance(named, bool) or not isinstance(named, int)):
        raise InputError(f"original_version must be an integer version number, not {named!r}"[:200])
    user = actor.user
    if local_user_may_name_themselves and isinstance(params.get("user"), str) and params["user"].strip():
        user = params["user"].strip()[:128]
    info = {k: v for k, v in params.items() if k not in SERVER_RECORDED}
    return Submission({**info, "user": user, "client": actor.client}, named)
