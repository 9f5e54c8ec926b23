"""``btl-server``: start the BrainTumorLabel server, MONAI Label running this project's app with
the application of :mod:`lib.server` (authentication, roles, limits, audit).

    btl-server --studies <folder | http(s)://pacs/dicom-web> [--host 127.0.0.1] [--port 8000] \\
        [--conf key value ...]

MONAI Label logs its arguments as given, so they are checked first: a user name or password in
the ``--studies`` address is refused (give them in ``BTL_PACS_USERNAME`` / ``BTL_PACS_PASSWORD``
or ``--conf pacs_credentials_file FILE``). The server binds 127.0.0.1 unless ``--host`` says
otherwise; serving another address needs authentication (``BTL_OIDC_ISSUER``, ``BTL_OIDC_AUDIENCE``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

APP_DIR = Path(__file__).resolve().parents[1] / "monailabel_app"


def main(argv: list[str] | None = None) -> int:
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
        print("btl-server: put no user name or password in --studies; use BTL_PACS_USERNAME and "
              "BTL_PACS_PASSWORD, or --conf pacs_credentials_file FILE", file=sys.stderr)
        return 2
    command = ["monailabel", "start_server", "--app", args.app, "--studies", args.studies, "--host", args.host,
               "--port", str(args.port), "--uvicorn_app", "lib.server:app"]
    for key, value in args.conf:
        command += ["--conf", key, value]
    from monailabel.main import Main

    # MONAI Label unloads every module named lib.* before loading an app (its apps keep a lib/
    # folder); this project's lib is one package for the server and the app: load it once.
    os.environ["MONAI_LABEL_RELOAD_APP_LIB"] = "false"
    sys.argv = command
    Main().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
