"""The server side of the Slicer Lib tests, for a client on another Python (standard library only).

The Lib tests (``tests/slicer_extension/test_lib_*.py``) run under Slicer's Pythons (3.9, 3.12) in venvs
that hold pytest and nothing else; the server, and what makes their data (generated studies,
labels, DICOM files, PDFs read back), run on the project's own Python: ``BTL_SERVER_PYTHON``
(the Makefile sets it to ``.venv/bin/python``), else this interpreter. :func:`task` runs one of
``_server_tasks.py``'s functions there, in one process kept for the session, and returns its
JSON answer.
"""

from __future__ import annotations

import atexit
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


class _TaskProcess:
    """One ``_server_tasks`` process on the server's Python for the whole test session: its imports
    (NumPy, SimpleITK, the generator) are paid once, not at every task."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None

    def ask(self, name: str, arguments: dict[str, Any]) -> Any:
        if self.process is None or self.process.poll() is not None:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO)])}
            self.process = subprocess.Popen([str(server_python()), "-m", "_server_tasks"], cwd=REPO, env=env,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            atexit.register(self.process.kill)
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps([name, arguments]) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"server-side task {name}: the task process ended ({self.process.wait()})")
        ok, answer = json.loads(line)
        if not ok:
            raise RuntimeError(f"server-side task {name} failed:\n{answer}")
        return answer


_TASKS = _TaskProcess()


def task(name: str, **arguments: Any) -> Any:
    """``_server_tasks.<name>(**arguments)`` on the server's Python; paths go as strings."""
    return _TASKS.ask(name, {k: str(v) if isinstance(v, Path) else v for k, v in arguments.items()})
