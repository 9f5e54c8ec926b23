"""The Slicer API names the module calls, and where Slicer 5.8.0 declares each.

:func:`called_names` reads the module's code (``BrainTumorLabel.py`` and the Lib's MRML part,
``logic.py``) and returns every attribute name it uses that is not the project's own, nor
Python's, numpy's, unittest's or Qt's (PySide6 knows Qt's; PythonQt has the same names), nor a
widget of the .ui file: what is left are names of Slicer, CTK, qMRML and VTK objects.
``test_slicer_api_names.py`` checks them against the committed table ``slicer-api-5.8.0.tsv``
(name, then where Slicer v5.8.0 declares it: ``path:line``, or ``VTK <class>`` for a method of
VTK itself; CTK's names at the CTK commit that Slicer v5.8.0 builds, ``CTK@<commit> path:line``).
Run this file to rebuild the table from clones of Slicer's and CTK's repositories:

    .venv/bin/python tests/slicer_extension/_slicer_api.py /path/to/Slicer.git v5.8.0 /path/to/CTK.git
"""

from __future__ import annotations

import ast
import getpass
import json
import logging
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
import typing
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "slicer_extension" / "BrainTumorLabel"
CALLERS = (MODULE / "BrainTumorLabel.py", MODULE / "BrainTumorLabelLib" / "logic.py")
TABLE = Path(__file__).resolve().parent / "slicer-api-5.8.0.tsv"


def _used(path: Path) -> dict[str, int]:
    used: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute):
            used.setdefault(node.attr, node.lineno)
    return used


def _project_names() -> set[str]:
    names = set()
    for path in (REPO / "slicer_extension").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.Assign):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    ui = (MODULE / "Resources" / "UI" / "BrainTumorLabel.ui").read_text()
    return names | set(re.findall(r'<widget class="\w+" name="(\w+)"', ui))


def _python_names() -> set[str]:
    import numpy

    names: set[str] = set()
    for obj in (str, bytes, dict, list, tuple, set, int, float, pathlib.Path, logging, time, tempfile, shutil, os,
                getpass, json, typing, numpy, numpy.ndarray, unittest.TestCase):
        names |= set(dir(obj))
    return names


def _qt_names() -> set[str]:
    from PySide6 import QtCore, QtGui, QtWidgets

    names: set[str] = set()
    for module in (QtCore, QtGui, QtWidgets):
        for name in dir(module):
            names.add(name)
            value = getattr(module, name)
            if isinstance(value, type):
                names |= set(dir(value))
                for member in dir(value):  # enums: Qt.TransformationMode.SmoothTransformation
                    if isinstance(getattr(value, member, None), type):
                        names |= set(dir(getattr(value, member)))
                if issubclass(value, QtCore.QObject):
                    meta = value.staticMetaObject
                    names |= {meta.property(i).name() for i in range(meta.propertyCount())}
    return names


def called_names() -> dict[str, str]:
    """Slicer/CTK/qMRML/VTK names the module uses -> where it first uses each (``file:line``)."""
    known = _project_names() | _python_names() | _qt_names()
    found: dict[str, str] = {}
    for path in CALLERS:
        for name, line in _used(path).items():
            if name not in known:
                found.setdefault(name, f"{path.relative_to(REPO)}:{line}")
    return found


def read_table(path: Path = TABLE) -> dict[str, str]:
    rows = [line.split("\t") for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return {name: where for name, where in rows}


# ---- building the table from Slicer's sources
def _grep(git_dir: str, tag: str, pattern: str, paths: tuple[str, ...]) -> list[str]:
    done = subprocess.run(["git", "-C", git_dir, "grep", "-n", "-P", pattern, tag, "--", *paths,
                           ":(exclude)*/Testing/*"], capture_output=True, text=True)
    return [line.split(":", 1)[1] for line in done.stdout.splitlines()]  # drop the "tag:" prefix


def declaration(git_dir: str, tag: str, name: str) -> str | None:
    """Where Slicer (or CTK) declares ``name``: a Python module, def or attribute set on ``slicer``;
    a C++ class, Qt property, VTK set/get macro, method declaration or enum value in a header;
    None when the sources do not."""
    module = f"Base/Python/slicer/{name}.py"  # slicer.util
    if subprocess.run(["git", "-C", git_dir, "cat-file", "-e", f"{tag}:{module}"], capture_output=True).returncode == 0:
        return f"{module}:1"
    base = re.sub(r"^(SetAndObserve|Get|Set)", "", name)
    python = ("Base/Python/*.py", "Modules/Scripted/*.py")
    patterns = [
        (rf"^\s*def {name}\(|^\s*checkedSetAttr\(\w+, \"{name}\"|setattr\(slicer, \"{name}\"", python),
        (rf"^class (\w+ )?{name}\b[^;]*$", ("*.h",)),
        (rf"Q_PROPERTY\(\w+\*? {name} ", ("*.h",)),
        (rf"^\s*vtk\w*Macro\( *{base} *[,)]", ("*.h",)),
        (rf"^\s*(?!return\b)(virtual |static |Q_INVOKABLE |inline )*([A-Za-z_][\w:<>*&,]*[ *&]+)+{name} ?\(", ("*.h",)),
        (rf"^\s*{name}\s*(=|,)", ("*.h",)),
    ]
    for pattern, paths in patterns:
        hits = _grep(git_dir, tag, pattern, paths)
        if hits:
            path, line, _ = hits[0].split(":", 2)
            return f"{path}:{line}"
    return None


def vtk_class(name: str) -> str | None:
    import vtk

    for cls in ("vtkObjectBase", "vtkObject", "vtkStringArray", "vtkMatrix4x4", "vtkImageData"):
        if name == cls or hasattr(getattr(vtk, cls), name):
            return f"VTK {cls}"
    return None


def ctk_commit(git_dir: str, tag: str) -> str:
    """The CTK commit Slicer's superbuild checks out at ``tag``."""
    cmake = subprocess.run(["git", "-C", git_dir, "show", f"{tag}:SuperBuild/External_CTK.cmake"],
                           capture_output=True, text=True, check=True).stdout
    found = re.search(r'Slicer_\$\{proj\}_GIT_TAG\s+"([0-9a-f]{40})"', cmake)
    if found is None:
        raise LookupError(f"no CTK commit in SuperBuild/External_CTK.cmake at {tag}")
    return found.group(1)


def main(git_dir: str, tag: str, ctk_dir: str) -> int:
    ctk = ctk_commit(git_dir, tag)
    rows = []
    for name in sorted(called_names(), key=str.lower):
        in_ctk = declaration(ctk_dir, ctk, name)
        where = declaration(git_dir, tag, name) or (f"CTK@{ctk[:10]} {in_ctk}" if in_ctk else None) or vtk_class(name)
        if where is None:
            print(f"not declared in Slicer {tag} nor VTK: {name}", file=sys.stderr)
            return 1
        rows.append(f"{name}\t{where}")
    TABLE.write_text(f"# Slicer API names BrainTumorLabel calls, where Slicer {tag} declares each "
                     f"(tests/slicer_extension/_slicer_api.py)\n" + "\n".join(rows) + "\n")
    print(f"{len(rows)} names written to {TABLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
