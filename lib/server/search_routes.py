"""The case-search routes (``/btl/search...``, ``/btl/patients``, a hit's thumbnail): thin over
:class:`lib.search.service.SearchService`. Every search is in the audit trail with what it
asked and the studies it returned, since it reads patient data. The patient's id and name are
shown to callers granted the clinician role itself; a caller whose roles only include it
(an annotator, an ML admin) gets a pseudonymous patient key instead."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse

from lib.search.filters import parse_filters

from .auth import Principal, Role
from .context import Actor, ServedApp, served
from .errors import http_errors

_SIMILAR_PARAMETERS = frozenset({"study", "k", "by"})
_TEXT_PARAMETERS = frozenset({"q", "k", "mode"})


def shows_patient(request: Request) -> bool:
    """True when the caller was granted the clinician role (not merely a role that includes it)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal is not None and Role.CLINICIAN in principal.roles


def _audited(hits: list[dict[str, Any]]) -> list[str]:
    return [hit["study"] for hit in hits]


def build_router() -> APIRouter:
    router = APIRouter(prefix="/btl", tags=["Case search"])

    @router.get("/search/similar", summary="Studies like this one, by image, tumor or both, with filters")
    def similar(request: Request, study: str = Query(max_length=128), k: int = 10, by: str = "both",
                btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            actor = Actor.of(request)
            filters = parse_filters(request.url.query, _SIMILAR_PARAMETERS)
            answer = btl.search.similar(study, k, by, filters, shows_patient(request))
        actor.audit(btl.audit, "search.similar", study=study,
                    detail={"by": by, "k": k, "filters": request.url.query[:500], "hits": _audited(answer["hits"])})
        return answer

    @router.get("/search", summary="Signed reports by words and meaning, with filters")
    def text(request: Request, q: str = "", k: int = 10, mode: str = "hybrid",
             btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            actor = Actor.of(request)
            filters = parse_filters(request.url.query, _TEXT_PARAMETERS)
            answer = btl.search.text(q, k, mode, filters, shows_patient(request))
        actor.audit(btl.audit, "search.text", detail={"q": q[:200], "mode": mode, "k": k,
                                                      "filters": request.url.query[:500],
                                                      "hits": _audited(answer["hits"])})
        return answer

    @router.get("/patients", summary="A patient's studies by patient id, name or accession number")
    def patients(request: Request, q: str = "", btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            actor = Actor.of(request)
            answer = btl.search.patients(q, shows_patient(request))
        found = [s["study"] for p in answer["patients"] for s in p["studies"]]
        actor.audit(btl.audit, "search.patients", detail={"q": q[:200], "hits": found})
        return answer

    @router.get("/search/status", summary="The search index: studies, pending work, problems")
    def status(btl: ServedApp = Depends(served)) -> dict[str, Any]:
        with http_errors():
            return btl.search.status()

    @router.get("/studies/{image_id}/thumbnail", summary="A searchable study's thumbnail (PNG)")
    def thumbnail(image_id: str, btl: ServedApp = Depends(served)) -> FileResponse:
        with http_errors():
            path = btl.search.thumbnail(image_id)
        return FileResponse(path, media_type="image/png", filename=f"{image_id}-thumbnail.png")

    return router
