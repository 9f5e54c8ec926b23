"""The HTTP edge of BrainTumorLabel: what stands between the network and the MONAI Label app.

One module a job:

- :mod:`~lib.server.cli`: ``btl-server``, the command that starts it (uvicorn, with the limits);
- :mod:`~lib.server.application`: the ASGI application, built from the settings;
- :mod:`~lib.server.routes`: the allow-list of routes and the role each needs;
- :mod:`~lib.server.monailabel_routes`, :mod:`~lib.server.btl_routes`, :mod:`~lib.server.login`:
  the handlers (MONAI Label's REST surface, the app's ``/btl`` routes, ``/auth``);
- :mod:`~lib.server.auth`: OpenID Connect tokens, roles, the loopback rule without them;
- :mod:`~lib.server.limits`, :mod:`~lib.server.settings`: queues, body and header limits, login
  throttling, and their ``BTL_*`` variables;
- :mod:`~lib.server.uploads`: uploads kept in a folder of their own for one request;
- :mod:`~lib.server.errors`: typed errors to HTTP answers, in one table;
- :mod:`~lib.server.context`: what a route works with (the served app, the actor, a submission);
- :mod:`~lib.server.audit`: the append-only audit trail.

``lib.server:app`` (what uvicorn imports) is the application of :mod:`~lib.server.asgi`, built
on first access, so that importing a module of this package builds nothing.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "app":
        from .asgi import app

        return app
    raise AttributeError(f"module 'lib.server' has no attribute {name!r}")
