"""What 3D Slicer's application provides and the ``slicer-core`` wheel lacks, for the module's
Logic tests: the application's scene (``slicer.mrmlScene``, a real ``vtkMRMLScene`` per test),
the scripted-module base classes, and the ``qt`` / parameter-node modules that
``BrainTumorLabel.py`` imports at the top (its widget is not exercised here; its ``.ui`` file
is, in ``test_module_ui.py``). MRML itself is the real thing."""

from __future__ import annotations

import os
import sys
import types

import pytest
import slicer


class ScriptedLoadableModule:
    def __init__(self, parent: object) -> None:
        self.parent = parent


class ScriptedLoadableModuleLogic:
    def __init__(self, parent: object = None) -> None:
        self.parent = parent


class ScriptedLoadableModuleWidget:
    def __init__(self, parent: object = None) -> None:
        self.parent = parent


class ScriptedLoadableModuleTest:
    pass


def _install_application_modules() -> None:
    base = types.ModuleType("slicer.ScriptedLoadableModule")
    for cls in (ScriptedLoadableModule, ScriptedLoadableModuleLogic, ScriptedLoadableModuleWidget,
                ScriptedLoadableModuleTest):
        setattr(base, cls.__name__, cls)
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper = lambda cls: cls  # the typed wrapper is Slicer's; its fields are plain here
    sys.modules.setdefault("slicer.ScriptedLoadableModule", base)
    sys.modules.setdefault("slicer.parameterNodeWrapper", wrapper)
    sys.modules.setdefault("qt", types.ModuleType("qt"))
    slicer.ScriptedLoadableModule = sys.modules["slicer.ScriptedLoadableModule"]
    slicer.parameterNodeWrapper = sys.modules["slicer.parameterNodeWrapper"]


_install_application_modules()
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # the .ui test needs no display


@pytest.fixture
def scene() -> slicer.vtkMRMLScene:
    """A fresh MRML scene, also as ``slicer.mrmlScene`` (as in the application)."""
    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    yield scene
    scene.Clear(1)
