"""The server side of the Slicer Lib tests, for a client on another Python (standard library only).

The Lib tests (``tests/slicer_extension/test_lib_*.py``) run under Slicer's Pythons (3.9, 3.12) in venvs
that hold pytest and nothing else; the server, and what makes their data (generated studies,
labels, DICOM files, PDFs read back), run on the project's own Python: ``BTL_SERVER_PYTHON``
(the Makefile sets it to ``.venv/bin/python``), else this interpreter. :func:`task` runs one of
``_server_tasks.py``'s functions there and returns its JSON answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def server_python() -> Path:
    return Path(os.environ.get("BTL_SERVER_PYTHON") or sys.executable)


def task(name: str, **arguments: Any) -> Any:
    """``_server_tasks.<name>(**arguments)`` on the server's Python; paths go as strings."""
    arguments = {k: str(v) if isinstance(v, Path) else v for k, v in arguments.items()}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO)])}
    done = subprocess.run([str(server_python()), "-m", "_server_tasks", name, json.dumps(arguments)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"server-side task {name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
