"""The ASGI application ``btl-server`` runs: the routes of :mod:`lib.server.routes` and nothing else.

Built by :func:`build_app` from the settings, in one visible order:

- middleware, outermost first: CORS (only for the origins ``BTL_CORS_ORIGINS`` names; none by
  default), authentication and roles (:mod:`lib.server.auth`; 404 for a route not served),
  request-body limits (:class:`lib.server.limits.BodyLimit`);
- the routes, registered in the order they must match: the documentation, ``/auth``, MONAI
  Label's REST surface (:mod:`lib.server.monailabel_routes`), the app's ``/btl`` routes
  (:mod:`lib.server.btl_routes`), the case search (:mod:`lib.server.search_routes`); at
  build time the app must answer exactly the table of
  :data:`lib.server.routes.ROUTES`;
- the typed-error boundary (:mod:`lib.server.errors`).

At start (the lifespan) the MONAI Label app is made and checked once against
:class:`lib.server.context.ServedApp`, started through its ``start_serving`` (which tells it
that this guarded application serves it), and handed to the routes as ``app.state.btl``.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse
from fastapi.routing import iter_route_contexts
from monailabel.interfaces.utils.app import app_instance
from starlette.middleware import Middleware

from . import btl_routes, login, monailabel_routes, search_routes
from .auth import AuthMiddleware, AuthSettings, TokenVerifier, loopback_only
from .context import ServedApp
from .errors import install_error_handlers
from .limits import BodyLimit, LoginThrottle
from .routes import ROUTES, role_of
from .settings import ServerSettings

logger = logging.getLogger(__name__)

BANNER = "AUTHENTICATION IS OFF: every request is an administrator. Loopback only, for one user on this computer."


def build_app(settings: ServerSettings, auth: AuthSettings) -> FastAPI:
    """The server's application (see the module docstring)."""
    verifier = TokenVerifier(auth) if auth.mode == "oidc" else None
    middleware = [Middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_credentials=True,
                             allow_methods=["GET", "POST", "PUT", "DELETE"], allow_headers=["*"])] \
        if settings.cors_origins else []
    middleware += [Middleware(AuthMiddleware, settings=auth, role_of=role_of, verifier=verifier),
                   Middleware(BodyLimit, max_bytes=settings.max_upload_bytes, grace_s=settings.body_grace_s,
                              min_rate_bytes_s=settings.body_min_rate_kib_s * 1024)]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.btl = start_served_app()
        if verifier is not None:
            threading.Thread(target=verifier.warm_up, name="oidc-warm-up", daemon=True).start()
        yield

    app = FastAPI(title="BrainTumorLabel", description="Brain tumor segmentation (NCR, ED, ET) from t1n, t1c, t2w, "
                  "t2f: a MONAI Label server", openapi_url="/openapi.json", docs_url=None, redoc_url="/docs",
                  lifespan=lifespan, middleware=middleware)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/docs")

    app.include_router(login.build_router(auth, verifier, LoginThrottle(settings.login_attempts_per_min)))
    app.include_router(monailabel_routes.build_router(settings, auth_off=auth.mode == "off"))
    app.include_router(btl_routes.build_router())
    app.include_router(search_routes.build_router())
    install_error_handlers(app)
    check_routes(app)
    return app


def start_served_app() -> ServedApp:
    """MONAI Label's app instance (made from ``--app``'s ``main.py``), checked to be one this
    edge can serve, and started."""
    instance = app_instance()
    if not isinstance(instance, ServedApp):
        raise SystemExit(f"{type(instance).__name__} is not a BrainTumorLabel app (lib.server.context.ServedApp); "
                         "start btl-server with this project's monailabel_app")
    instance.start_serving()
    return instance


def check_routes(app: FastAPI) -> None:
    """The app answers exactly :data:`ROUTES`: each of its routes is one row, each row one route
    (HEAD, which Starlette adds to its own GET routes, is checked as GET)."""
    served = {(method, route.path) for route in iter_route_contexts(app.routes)
              for method in (route.methods or ()) if method != "HEAD"}
    table = {(rule.method, rule.path) for rule in ROUTES}
    if served != table:
        raise RuntimeError(f"the routes differ from lib.server.routes.ROUTES: not served {sorted(table - served)}, "
                           f"not in the table {sorted(served - table)}")


def check_authentication_mode(auth: AuthSettings, host: str) -> None:
    """Authentication off is for a single-user laptop: loopback only, and said loudly.
    SystemExit naming what to do when ``host`` is not a loopback address."""
    if auth.mode != "off":
        logger.info("authentication: OpenID Connect tokens from %s for audience %s", auth.issuer, auth.audience)
        return
    if not loopback_only(host):
        raise SystemExit(f"refusing to serve {host} without authentication: set BTL_OIDC_ISSUER and "
                         "BTL_OIDC_AUDIENCE, or bind 127.0.0.1 (--host 127.0.0.1) for a single user")
    logger.warning(BANNER)
    print(f"\n*** {BANNER} ***\n", file=sys.stderr, flush=True)
