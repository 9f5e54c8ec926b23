"""The routes the server serves, and the role each needs: an allow-list.

Only these are registered (:mod:`lib.server.application` builds the app from them and checks,
at start, that the app answers exactly this table); any other method and path is a 404, also
for an administrator. They are MONAI Label's REST surface as its official client and Slicer
plugin use it, this project's Slicer module, and the app's own ``/btl`` routes. MONAI Label's
other routes (sessions, WSI inference, scoring, batch inference, the viewer proxies, logs,
model file downloads, study info edits, reload) are not served.

Each role has every right of the roles before it (clinician < annotator < ML admin).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .auth import NotServed, Role

PUBLIC = None
_CLIN, _ANNO, _ADMIN = Role.CLINICIAN, Role.ANNOTATOR, Role.ADMIN


@dataclass(frozen=True)
class RouteRule:
    """One route: ``method``, ``path`` (FastAPI template) and the ``role`` it needs (None: public)."""

    method: str
    path: str
    role: Role | None
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\{\w+\}", "[^/]+", re.escape(self.path.rstrip("/")).replace(r"\{", "{").replace(r"\}", "}"))
        object.__setattr__(self, "pattern", re.compile(f"{regex}/?"))

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and self.pattern.fullmatch(path) is not None


#: Every route the server answers. The first row that matches a request gives its role.
ROUTES: tuple[RouteRule, ...] = (
    # documentation and login
    RouteRule("GET", "/", PUBLIC),  # redirects to /docs
    RouteRule("GET", "/docs", PUBLIC),
    RouteRule("GET", "/openapi.json", PUBLIC),
    RouteRule("GET", "/auth/", PUBLIC),
    RouteRule("POST", "/auth/token", PUBLIC),
    RouteRule("GET", "/auth/token/valid", _CLIN),
    # MONAI Label's REST surface
    RouteRule("GET", "/info/", _CLIN),
    RouteRule("POST", "/infer/{model}", _CLIN),
    RouteRule("GET", "/datastore/dataset", _ADMIN),  # every labelled study as a zip
    RouteRule("GET", "/datastore/", _CLIN),
    RouteRule("PUT", "/datastore/", _ADMIN),  # add a study (the official client's upload_image)
    RouteRule("DELETE", "/datastore/", _ADMIN),  # remove a study (moved aside)
    RouteRule("GET", "/datastore/image", _CLIN),
    RouteRule("PUT", "/datastore/image", _ADMIN),  # add a study
    RouteRule("GET", "/datastore/image/info", _CLIN),
    RouteRule("GET", "/datastore/label", _CLIN),
    RouteRule("PUT", "/datastore/label", _ANNO),
    RouteRule("DELETE", "/datastore/label", _ADMIN),
    RouteRule("GET", "/datastore/label/info", _CLIN),
    RouteRule("PUT", "/datastore/label/info", _ANNO),
    RouteRule("POST", "/activelearning/{strategy}", _ANNO),
    RouteRule("GET", "/train/", _CLIN),  # status
    RouteRule("POST", "/train/", _ADMIN),  # every model (the official client's train_start)
    RouteRule("POST", "/train/{model}", _ADMIN),
    RouteRule("DELETE", "/train/", _ADMIN),
    # the app's own routes
    RouteRule("GET", "/btl/studies/{image_id}/sequences/{sequence}", _CLIN),
    RouteRule("GET", "/btl/studies/{image_id}/labels/{tag}", _CLIN),
    RouteRule("GET", "/btl/studies/{image_id}/labels/{tag}/{version}", _CLIN),
    RouteRule("POST", "/btl/sequences/identify", _CLIN),
    RouteRule("POST", "/btl/studies/{image_id}/report", _CLIN),
    RouteRule("GET", "/btl/studies/{image_id}/report", _CLIN),
    RouteRule("PUT", "/btl/studies/{image_id}/report/findings/{key}", _CLIN),
    RouteRule("POST", "/btl/studies/{image_id}/report/sign", _CLIN),
    RouteRule("POST", "/btl/studies/{image_id}/report/publish", _CLIN),
    RouteRule("GET", "/btl/studies/{image_id}/report/pdf", _CLIN),
    RouteRule("GET", "/btl/studies/{image_id}/report/images", _CLIN),
    RouteRule("GET", "/btl/effort", _CLIN),
    RouteRule("GET", "/btl/uncertainty", _CLIN),
    RouteRule("GET", "/btl/models", _CLIN),
    RouteRule("POST", "/btl/admin/models/{version}/serve", _ADMIN),
    RouteRule("POST", "/btl/jobs", _ADMIN),
    RouteRule("GET", "/btl/jobs", _ADMIN),
    RouteRule("GET", "/btl/jobs/{job_id}", _ADMIN),
    RouteRule("DELETE", "/btl/jobs/{job_id}", _ADMIN),
    RouteRule("GET", "/btl/audit", _ADMIN),
    # case search (every search is audited)
    RouteRule("GET", "/btl/search/similar", _CLIN),
    RouteRule("GET", "/btl/search", _CLIN),
    RouteRule("GET", "/btl/patients", _CLIN),
    RouteRule("GET", "/btl/search/status", _CLIN),
    RouteRule("GET", "/btl/studies/{image_id}/thumbnail", _CLIN),
)


def role_of(method: str, path: str) -> Role | None:
    """The role a request needs (None: public; HEAD is GET); :class:`NotServed` when no route
    of :data:`ROUTES` answers it."""
    method = "GET" if method.upper() == "HEAD" else method.upper()
    for rule in ROUTES:
        if rule.matches(method, path):
            return rule.role
    raise NotServed(f"no route {method} {path[:120]} on this server")
