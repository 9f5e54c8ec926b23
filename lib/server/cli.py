"""``btl-server``: start the BrainTumorLabel server, MONAI Label's app behind this project's
application (:mod:`lib.server.application`: authentication, roles, the route allow-list, limits,
audit), on uvicorn with a header timeout and a connection cap.

    btl-server --studies <folder | http(s)://pacs/dicom-web> [--host 127.0.0.1] [--port 8000] \\
        [--conf key value ...]

Checked before anything starts: a user name or password in the ``--studies`` address is refused
(give them in ``BTL_PACS_USERNAME`` / ``BTL_PACS_PASSWORD`` or ``--conf pacs_credentials_file
FILE``: MONAI Label logs its arguments); the ``BTL_*`` settings must be valid; the server binds
127.0.0.1 unless ``--host`` says otherwise, and serving another address needs authentication
(``BTL_OIDC_ISSUER``, ``BTL_OIDC_AUDIENCE``). MONAI Label's settings are made by its own code
(the app folder, the studies, ``--conf``), as ``monailabel start_server`` makes them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn
from monailabel.config import settings as monailabel_settings
from monailabel.main import Main
from monailabel.utils.others.generic import init_log_config

from lib.compat import highdicom_on_numpy2

from .application import check_authentication_mode
from .auth import AuthSettings
from .limits import HeaderTimeoutProtocol
from .settings import ServerSettings

APP_DIR = Path(__file__).resolve().parents[2] / "monailabel_app"
#: What uvicorn imports.
ASGI_APP = "lib.server:app"


def main(argv: list[str] | None = None) -> int:
    highdicom_on_numpy2()  # once, where the process starts: see lib/compat.py
    ap = argparse.ArgumentParser(prog="btl-server", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--studies", required=True, help="a folder of studies, or a DICOMweb URL (no credentials)")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--app", default=str(APP_DIR), help=argparse.SUPPRESS)
    ap.add_argument("--conf", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"))
    args = ap.parse_args(argv)
    parts = urlsplit(args.studies)
    if parts.scheme in ("http", "https") and (parts.username is not None or parts.password is not None):
        return _refuse("put no user name or password in --studies; use BTL_PACS_USERNAME and "
                       "BTL_PACS_PASSWORD, or --conf pacs_credentials_file FILE")
    try:
        server = ServerSettings.from_environment()
        auth = AuthSettings.from_environment()
        check_authentication_mode(auth, args.host)
    except (ValueError, SystemExit) as exc:
        return _refuse(str(exc))

    # MONAI Label unloads every module named lib.* before loading an app (its apps keep a lib/
    # folder); this project's lib is one package for the server and the app: load it once.
    os.environ["MONAI_LABEL_RELOAD_APP_LIB"] = "false"
    monailabel_settings.MONAI_LABEL_SESSIONS = False  # sessions are not served (lib.server.routes)
    monailabel = Main()
    command = ["start_server", "--app", args.app, "--studies", args.studies, "--host", args.host,
               "--port", str(args.port)]
    for key, value in args.conf:
        command += ["--conf", key, value]
    start = monailabel.args_parser().parse_args(command)
    monailabel.start_server_validate_args(start)
    monailabel.start_server_init_settings(start)
    log_config = init_log_config(None, start.app, "app.log", start.verbose)
    config = uvicorn.Config(ASGI_APP, host=args.host, port=args.port, log_config=log_config, use_colors=False,
                            http=header_timeout_protocol(server.header_timeout_s),
                            limit_concurrency=server.max_connections, timeout_keep_alive=server.keep_alive_s)
    os.unlink(log_config)  # a temporary file MONAI Label wrote; uvicorn has read it
    uvicorn.Server(config).run()
    return 0


def header_timeout_protocol(header_timeout_s: float) -> type[HeaderTimeoutProtocol]:
    """uvicorn's HTTP protocol with this header timeout."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": header_timeout_s})


def _refuse(message: str) -> int:
    print(f"btl-server: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
