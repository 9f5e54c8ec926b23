"""``btl-search``: the case-search index of a datastore, from the command line.

    btl-search reindex --studies <folder | DICOMweb URL> [--conf key value ...]   rebuild it all
    btl-search update  --studies ...   index what is missing or stale (studies segmented before
                                       the search existed, a new model version, new reports)
    btl-search status  --studies ...

The app is made exactly as the server makes it (``monailabel_app/main.py`` with the same
``--conf``), so the index, the model and the datastore are the server's. It can run while the
server runs: the server notices the index changed and reloads it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from monailabel.interfaces.utils.app import app_instance

from lib.compat import highdicom_on_numpy2

APP_DIR = Path(__file__).resolve().parents[2] / "monailabel_app"


def main(argv: list[str] | None = None) -> int:
    highdicom_on_numpy2()  # once, where the process starts: see lib/compat.py
    ap = argparse.ArgumentParser(prog="btl-search", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("reindex", "update", "status"))
    ap.add_argument("--studies", required=True, help="a folder of studies, or a DICOMweb URL (no credentials)")
    ap.add_argument("--conf", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    os.environ["MONAI_LABEL_RELOAD_APP_LIB"] = "false"  # this project's lib is one package (see btl-server)
    app = app_instance(str(APP_DIR), args.studies, dict(args.conf))
    search = app.search
    if args.command == "reindex":
        result = search.reindex()
    elif args.command == "update":
        result = {"queued": search.reconcile(), "indexed": search.run_pending()}
    else:
        result = {}
    print(json.dumps({**result, **search.status()}, indent=1))
    search.index.close()
    return 1 if search.problems and args.command != "status" else 0


if __name__ == "__main__":
    sys.exit(main())
