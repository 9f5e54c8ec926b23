"""The extension as Slicer builds it: the files CMake lists exist and nothing is left out, the
module's .ui holds every widget the code uses, the GUI-free library stays GUI-free, and the
module folder has one top-level .py."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from PySide6.QtCore import QFile
from PySide6.QtUiTools import QUiLoader
from PySide6.QtWidgets import QApplication, QWidget

REPO = Path(__file__).resolve().parents[3]
MODULE = REPO / "slicer_extension" / "BrainTumorLabel"


def _cmake_list(text: str, variable: str) -> list[str]:
    block = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S)
    assert block, variable
    return [item.replace("${MODULE_NAME}", "BrainTumorLabel") for item in block.group(1).split()]


def test_every_file_cmake_lists_exists_and_every_module_file_is_listed():
    top = (REPO / "CMakeLists.txt").read_text()
    for folder in re.findall(r"add_subdirectory\((\S+)\)", top):
        assert (REPO / folder / "CMakeLists.txt").is_file(), folder
    assert "find_package(Slicer REQUIRED)" in top and "include(${Slicer_EXTENSION_CPACK})" in top
    text = (MODULE / "CMakeLists.txt").read_text()
    scripts, resources = _cmake_list(text, "MODULE_PYTHON_SCRIPTS"), _cmake_list(text, "MODULE_PYTHON_RESOURCES")
    for listed in scripts + resources:
        assert (MODULE / listed).is_file(), listed
    on_disk = {str(p.relative_to(MODULE)) for p in MODULE.rglob("*.py") if "__pycache__" not in p.parts}
    assert on_disk == set(scripts)
    assert "slicerMacroBuildScriptedModule" in text and "WITH_GENERIC_TESTS" in text


def test_the_module_folder_holds_one_python_file_at_its_top():
    # Slicer's scripted-module factory loads every top-level .py of a module folder as a module
    assert sorted(p.name for p in MODULE.glob("*.py")) == ["BrainTumorLabel.py"]
    assert (MODULE / "BrainTumorLabelLib" / "__init__.py").is_file()


def test_the_ui_file_holds_every_widget_the_module_uses():
    app = QApplication.instance() or QApplication([])
    ui = QFile(str(MODULE / "Resources" / "UI" / "BrainTumorLabel.ui"))
    assert ui.open(QFile.ReadOnly)
    root = QUiLoader().load(ui)  # Slicer's own widgets fall back to their base classes here
    ui.close()
    names = {w.objectName() for w in root.findChildren(QWidget)}
    code = (MODULE / "BrainTumorLabel.py").read_text()
    used = set(re.findall(r"self\.ui\.(\w+)", code)) | {f"{s}Selector" for s in ("t1n", "t1c", "t2w", "t2f")}
    assert used and used <= names, sorted(used - names)
    assert app is not None


def test_the_library_imports_neither_slicer_nor_a_gui_nor_removed_modules():
    for path in (MODULE / "BrainTumorLabelLib").glob("*.py"):
        if path.name == "logic.py":  # the Lib's one MRML part: slicer, vtk, numpy; nothing imports it but the widget
            continue
        tree = ast.parse(path.read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not imported & {"slicer", "qt", "ctk", "vtk", "cgi", "imp", "requests"}, path.name
    lib = {path.stem for path in (MODULE / "BrainTumorLabelLib").glob("*.py")}
    for path in (MODULE / "BrainTumorLabelLib").glob("*.py"):
        tree = ast.parse(path.read_text())
        assert "BrainTumorLabelLib.logic" not in {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "logic" in lib
    module_tree = ast.parse((MODULE / "BrainTumorLabel.py").read_text())
    assert not {a.name for n in ast.walk(module_tree) if isinstance(n, ast.Import) for a in n.names} & {"cgi", "imp"}
