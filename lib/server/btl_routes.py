"""The app's own endpoints (``/btl/...``), next to MONAI Label's: a study's sequences and label
versions, DICOM sequence identification, the audit trail, the clinical report, the
correction effort, the uncertainty scores and the model registry (with an admin's rollback).
Each is thin over ``lib/``; typed errors become 4xx answers; what changes data goes into the
audit trail."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from lib.activelearning.effort import SURFACE_TOLERANCE_MM, as_dict, summary
from lib.datastore.labels import validate_tag
from lib.dicom.sequences import SeriesInfo, identify_sequences
from lib.report.response import ClinicalInputs

from .context import Actor, ServedApp, served
from .errors import http_errors


class SeriesAttributes(BaseModel):
    """One series as the client saw it: its UID, its instance count and one instance's DICOM JSON."""

    uid: str = Field(max_length=128)
    instances: int = Field(ge=0)
    attributes: dict[str, Any]


class IdentifyRequest(BaseModel):
    series: list[SeriesAttributes] = Field(max_length=1000)


class DraftRequest(BaseModel):
    """A draft report: the prior study to compare with, and what the clinician knows that the
    images cannot show (RANO's steroid dose and clinical status)."""

    prior: str | None = Field(default=None, max_length=128)
    steroid_dose: str = "unknown"
    clinical_status: str = "unknown"


class ReviewRequest(BaseModel):
    state: str = Field(max_length=16)
    text: str | None = Field(default=None, max_length=4000)


class SignRequest(BaseModel):
    impression: str = Field(max_length=20_000)
    recommendations: str = Field(default="", max_length=20_000)


class CohortRequest(BaseModel):
    """A cohort: the studies to segment (none named: every study of the datastore that can be)."""

    studies: list[str] | None = Field(default=None, max_length=100_000)


class ServeRequest(BaseModel):
    reason: str = Field(default="", max_length=2_000)


def build_router() -> APIRouter:
    """The ``/btl`` routes."""
    router = APIRouter(prefix="/btl", tags=["BrainTumorLabel"])

    @router.post("/studies/{image_id}/report", summary="Draft a report (measurements, response, key images)")
    def draft_report(request: Request, image_id: str, body: DraftRequest,
                     btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            actor = Actor.of(request)
            clinical = ClinicalInputs(steroid_dose=body.steroid_dose, clinical_status=body.clinical_status)
            report = btl.reports.draft(image_id, body.prior, clinical)
        actor.audit(btl.audit, "report.draft", study=image_id, version=report.version)
        return report.to_dict()

    @router.get("/studies/{image_id}/report", summary="A study's report (the newest version, or one)")
    def get_report(image_id: str, version: int | None = None, btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            service = btl.reports
            report = service.latest(image_id) if version is None else service.store.get(image_id, version)
        return report.to_dict()

    @router.put("/studies/{image_id}/report/findings/{key}", summary="Approve, edit or decline a finding")
    def review_finding(request: Request, image_id: str, key: str, body: ReviewRequest,
                       btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            actor = Actor.of(request)
            report = btl.reports.review(image_id, key, body.state, actor.user, body.text)
        actor.audit(btl.audit, "report.review", study=image_id, version=report.version,
                    detail={"finding": key, "state": body.state})
        return report.to_dict()

    @router.post("/studies/{image_id}/report/sign", summary="Sign the report (every finding reviewed)")
    def sign_report(request: Request, image_id: str, body: SignRequest,
                    btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            actor = Actor.of(request)
            service = btl.reports
            report = service.sign(image_id, actor.user, body.impression, body.recommendations)
        actor.audit(btl.audit, "report.approve", study=image_id, version=report.version)
        btl.search.changed(image_id)  # its text becomes searchable
        answer = report.to_dict()
        if service.publishes_to_pacs:
            with http_errors():
                answer["published"] = service.publish(image_id)
            actor.audit(btl.audit, "report.publish", study=image_id, version=report.version,
                        detail=answer["published"])
        return answer

    @router.post("/studies/{image_id}/report/publish", summary="Send the signed report to the PACS again")
    def publish_report(request: Request, image_id: str, btl: ServedApp = Depends(served)) -> dict[str, str]:
        with http_errors():
            actor = Actor.of(request)
            published = btl.reports.publish(image_id)
        actor.audit(btl.audit, "report.publish", study=image_id, detail=published)
        return published

    @router.get("/studies/{image_id}/report/pdf", summary="The report as a PDF")
    def report_pdf(image_id: str, version: int | None = None, btl: ServedApp = Depends(served)) -> FileResponse:
        with http_errors():
            path = btl.reports.file(image_id, "pdf", version)
        return FileResponse(path, media_type="application/pdf", filename=f"{image_id}-report.pdf")

    @router.get("/studies/{image_id}/report/images", summary="The report's key images (PNG)")
    def report_images(image_id: str, version: int | None = None, btl: ServedApp = Depends(served)) -> FileResponse:
        with http_errors():
            path = btl.reports.file(image_id, "images", version)
        return FileResponse(path, media_type="image/png", filename=f"{image_id}-key-images.png")

    @router.get("/studies/{image_id}/labels/{tag}", summary="Every version of a study's label, with its record")
    def label_versions(image_id: str, tag: str, btl: ServedApp = Depends(served)) -> list[dict[str, Any]]:
        with http_errors():
            store = btl.studies_store()
            store.get_image_info(image_id)  # an unknown study is a 404, not an empty list
            return [v.as_dict() for v in store.label_versions(image_id, validate_tag(tag))]

    @router.get("/studies/{image_id}/labels/{tag}/{version}", summary="One version of a study's label (NIfTI)")
    def label_version(image_id: str, tag: str, version: int, btl: ServedApp = Depends(served)) -> FileResponse:
        with http_errors():
            path = btl.studies_store().label_version_uri(image_id, validate_tag(tag), version)
        return FileResponse(path, media_type="application/gzip", filename=f"{image_id}-{tag}-v{version}.nii.gz")

    @router.get("/effort", summary="How far each final label moved from the model output it corrected")
    def correction_effort(btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            rows = btl.effort.rows(btl.studies_store())
        return {"surface_tolerance_mm": SURFACE_TOLERANCE_MM, "rows": [as_dict(r) for r in rows],
                "by_model_version": summary(rows)}

    @router.get("/uncertainty", summary="The served model's uncertainty per study (next_sample 'uncertainty')")
    def uncertainty(btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            return btl.uncertainty_status()

    @router.get("/models", summary="The model registry: versions, metrics, training labels, what is served")
    def model_versions(btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            return btl.model_versions()

    @router.post("/admin/models/{version}/serve", summary="Serve a registered model version (ML admins)")
    def serve_model(request: Request, version: str, body: ServeRequest,
                    btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            actor = Actor.of(request)
            answer = btl.serve_model(version, actor.user, body.reason)
        actor.audit(btl.audit, "model.serve", detail={"version": version, "reason": body.reason})
        return answer

    @router.post("/jobs", summary="Segment a cohort of studies as jobs (ML admins)")
    def start_cohort(request: Request, body: CohortRequest, btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            actor = Actor.of(request)
            cohort = btl.cohorts.start(body.studies, actor.user)
        actor.audit(btl.audit, "jobs.start", detail={"job": cohort["id"], "studies": cohort["studies"]})
        return cohort

    @router.get("/jobs", summary="The cohorts, with how many studies are in each state (ML admins)")
    def cohorts(btl: ServedApp = Depends(served)) -> list[dict[str, Any]]:
        with http_errors():
            return btl.cohorts.list()

    @router.get("/jobs/{job_id}", summary="A cohort: every study's state, worker, result or reason (ML admins)")
    def cohort(job_id: str, btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            return btl.cohorts.detail(job_id)

    @router.delete("/jobs/{job_id}", summary="Cancel a cohort (ML admins)")
    def cancel_cohort(request: Request, job_id: str, btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            actor = Actor.of(request)
            answer = btl.cohorts.cancel(job_id)
        actor.audit(btl.audit, "jobs.cancel", detail={"job": job_id})
        return answer

    @router.get("/audit", summary="The audit trail (ML admins)")
    def audit_events(study: str | None = None, user: str | None = None, action: str | None = None,
                     limit: int = Query(1000, ge=1, le=100_000),
                     btl: ServedApp = Depends(served)) -> list[dict[str, Any]]:
        return btl.audit.events(study=study, user=user, action=action, limit=limit)

    @router.get("/studies/{image_id}/sequences/{sequence}", summary="One sequence of a study (NIfTI)")
    def sequence_file(image_id: str, sequence: str, btl: ServedApp = Depends(served)) -> FileResponse:
        with http_errors():
            path = btl.studies_store().sequence_uri(image_id, sequence)
        return FileResponse(path, media_type="application/gzip", filename=f"{image_id}-{sequence}.nii.gz")

    @router.post("/sequences/identify", summary="Which series of a study is t1n, t1c, t2w, t2f")
    def identify(request: IdentifyRequest) -> dict[str, Any]:
        found = identify_sequences([SeriesInfo.from_dicom_json(s.uid, s.attributes, s.instances)
                                    for s in request.series])
        return {"sequences": found.series, "problem": found.problem,
                "decisions": {uid: {"kind": d.kind, "reason": d.reason} for uid, d in found.decisions.items()}}

    return router
