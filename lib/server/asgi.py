"""The application object uvicorn imports (``lib.server:app``), built from the environment.

``btl-server`` checks the address it binds before it starts uvicorn. Started by MONAI Label's
own command instead (``monailabel start_server ... --uvicorn_app lib.server:app``), the address
that command binds is read here with its own parser (the last ``--host``/``-i`` wins, as there),
and authentication off on another address stops the start. Whatever starts it, authentication
off answers only requests that arrive on a loopback address (:class:`lib.server.auth.AuthMiddleware`).
"""

from __future__ import annotations

import sys

from .application import build_app, check_authentication_mode
from .auth import AuthSettings
from .settings import ServerSettings


def monailabel_host(argv: list[str]) -> str | None:
    """The ``--host`` of a ``monailabel start_server`` command line, as MONAI Label parses it;
    None for any other command."""
    if len(argv) < 2 or argv[1] != "start_server":
        return None
    from monailabel.main import Main

    parsed, _ = Main().args_parser().parse_known_args(argv[1:])
    return str(parsed.host)


_auth = AuthSettings.from_environment()
if (_host := monailabel_host(sys.argv)) is not None:
    check_authentication_mode(_auth, _host)
app = build_app(ServerSettings.from_environment(), _auth)
