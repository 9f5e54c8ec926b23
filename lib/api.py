"""The app's own endpoints (``/btl/...``), next to MONAI Label's: what the Slicer module needs
beyond MONAI Label's API. Each is thin over ``lib/``; typed errors become 4xx answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from lib.audit import AuditLog
from lib.datastore.base import StudyDatastore
from lib.datastore.labels import validate_tag
from lib.dicom.sequences import SeriesInfo, identify_sequences
from lib.http_errors import http_errors


class SeriesAttributes(BaseModel):
    """One series as the client saw it: its UID, its instance count and one instance's DICOM JSON."""

    uid: str = Field(max_length=128)
    instances: int = Field(ge=0)
    attributes: dict[str, Any]


class IdentifyRequest(BaseModel):
    series: list[SeriesAttributes] = Field(max_length=1000)


def build_router(studies: Callable[[], StudyDatastore], audit: Callable[[], AuditLog]) -> APIRouter:
    """The ``/btl`` routes over the app's study datastore and audit log (``studies()`` and
    ``audit()`` return them)."""
    router = APIRouter(prefix="/btl", tags=["BrainTumorLabel"])

    @router.get("/studies/{image_id}/labels/{tag}", summary="Every version of a study's label, with its record")
    def label_versions(image_id: str, tag: str) -> list[dict[str, Any]]:
        with http_errors():
            store = studies()
            store.get_image_info(image_id)  # an unknown study is a 404, not an empty list
            return [v.as_dict() for v in store.label_versions(image_id, validate_tag(tag))]

    @router.get("/studies/{image_id}/labels/{tag}/{version}", summary="One version of a study's label (NIfTI)")
    def label_version(image_id: str, tag: str, version: int) -> FileResponse:
        with http_errors():
            path = studies().label_version_uri(image_id, validate_tag(tag), version)
        return FileResponse(path, media_type="application/gzip", filename=f"{image_id}-{tag}-v{version}.nii.gz")

    @router.get("/audit", summary="The audit trail (ML admins)")
    def audit_events(study: str | None = None, user: str | None = None, action: str | None = None,
                     limit: int = Query(1000, ge=1, le=100_000)) -> list[dict[str, Any]]:
        return audit().events(study=study, user=user, action=action, limit=limit)

    @router.get("/studies/{image_id}/sequences/{sequence}", summary="One sequence of a study (NIfTI)")
    def sequence_file(image_id: str, sequence: str) -> FileResponse:
        with http_errors():
            path = studies().sequence_uri(image_id, sequence)
        return FileResponse(path, media_type="application/gzip", filename=f"{image_id}-{sequence}.nii.gz")

    @router.post("/sequences/identify", summary="Which series of a study is t1n, t1c, t2w, t2f")
    def identify(request: IdentifyRequest) -> dict[str, Any]:
        found = identify_sequences([SeriesInfo.from_dicom_json(s.uid, s.attributes, s.instances)
                                    for s in request.series])
        return {"sequences": found.series, "problem": found.problem,
                "decisions": {uid: {"kind": d.kind, "reason": d.reason} for uid, d in found.decisions.items()}}

    return router
