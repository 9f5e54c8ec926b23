"""A harness that runs the Slicer module's widget under pytest, offscreen, on real MRML.

3D Slicer cannot run here. What it gives the module is provided as follows:

* ``qt``: PySide6 (QtCore, QtGui, QtWidgets, QtUiTools), offscreen (``QT_QPA_PLATFORM=offscreen``),
  with PythonQt's manners added by ``_pythonqt.PythonQtStyle``: Qt properties read and written as
  attributes (``button.enabled = False``, ``lineEdit.text``), ``name`` for the object name, and
  the string-signature ``connect('clicked()', slot)`` / ``disconnect``. A signature a widget
  lacks raises, so a misspelt signal fails here as it fails in Slicer.
* ``slicer.util.loadUI`` and ``childWidgetVariables``: Slicer's own (the slicer-core wheel's
  ``slicer/util.py``), which call ``qt.QUiLoader``: here ``_stand_in_widgets.UiLoader``, PySide6's QUiLoader
  creating the adapted widgets, and wiring the ``.ui`` file's ``<connections>`` that Qt cannot
  (signals of the stand-ins below, whose C++ signatures Python classes do not have).
* MRML, Segmentations logic, ``slicer.util`` and ``VTKObservationMixin``: the real ones (slicer-core).
* Stand-ins, each named ``STAND-IN`` in its docstring, only for what has no wheel: the compiled
  CTK/qMRML widgets (``ctkCollapsibleButton``, ``qMRMLWidget``, ``qMRMLNodeComboBox``,
  ``qMRMLSegmentEditorWidget``), the application around a module (``slicer.app``, the module
  panel with its ``isEntered``, ``slicer.ScriptedLoadableModule``'s base classes, which need the
  application), and ``slicer.parameterNodeWrapper`` (pure Python in Slicer, but not in any
  wheel: a small one here keeps the same contract, typed fields stored in the real
  ``vtkMRMLScriptedModuleNode`` and ``connectGui`` through ``SlicerParameterName``). The widgets
  are in ``_stand_in_widgets.py``, the rest in ``_stand_in_application.py``.

:func:`install` puts these in ``sys.modules``; ``conftest.py`` in this folder calls it before any
test imports the module. :class:`ModuleSession` opens the module as Slicer does (panel, setup,
enter), and leaves, closes the scene, or unloads it.
"""

from __future__ import annotations

import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import slicer
import slicer.util  # noqa: F401  (Slicer's own loadUI and childWidgetVariables)
from PySide6 import QtCore, QtGui, QtUiTools, QtWidgets

import _pythonqt  # noqa: F401  (the platform is chosen before slicer is imported)
from _pythonqt import PythonQtStyle, adapted
from _stand_in_application import (
    Application,
    DicomDatabase,
    LoadedModules,
    ModulePanel,
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
    loadSeriesByUID,
    parameterNodeWrapper,
)
from _stand_in_widgets import STAND_INS, UiLoader, qMRMLNodeComboBox

__all__ = ["DicomDatabase", "ModuleSession", "PythonQtStyle", "add_views", "connect", "install", "load_study",
           "new_scene", "qMRMLNodeComboBox", "wait_until"]

MODULE_DIR = Path(__file__).resolve().parents[3] / "slicer_extension" / "BrainTumorLabel"


def _quiet_stand_in_connections(kind: Any, context: Any, message: str) -> None:
    """Qt's warnings about the .ui's stand-in signals (wired by the harness) are not shown."""
    if "No such signal" in message or "(sender name:" in message or "(receiver name:" in message:
        return
    sys.stderr.write(message + "\n")


class QtModule(types.ModuleType):
    """The ``qt`` module: PySide6's names, QObject classes adapted, QUiLoader the harness's."""

    def __getattr__(self, name: str) -> Any:
        if name == "QUiLoader":
            return UiLoader
        for module in (QtCore, QtGui, QtWidgets, QtUiTools):
            if hasattr(module, name):
                value = getattr(module, name)
                if isinstance(value, type) and issubclass(value, QtCore.QObject):
                    value = adapted(value)
                setattr(self, name, value)
                return value
        raise AttributeError(f"qt has no {name} here (PySide6 lacks it)")


# ---- installation and the module's life
def install() -> None:
    """Put ``qt``, the application stand-ins and the parameter node stand-in in place, once."""
    if "qt" in sys.modules:
        return
    QtCore.qInstallMessageHandler(_quiet_stand_in_connections)
    QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    sys.modules["qt"] = QtModule("qt")
    base = types.ModuleType("slicer.ScriptedLoadableModule")
    for cls in (ScriptedLoadableModule, ScriptedLoadableModuleWidget, ScriptedLoadableModuleLogic,
                ScriptedLoadableModuleTest):
        setattr(base, cls.__name__, cls)
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper = parameterNodeWrapper  # type: ignore[attr-defined]
    dicom_lib = types.ModuleType("DICOMLib")
    dicom_lib.DICOMUtils = types.SimpleNamespace(loadSeriesByUID=loadSeriesByUID)  # type: ignore[attr-defined]
    sys.modules["DICOMLib"] = dicom_lib
    sys.modules["slicer.ScriptedLoadableModule"] = base
    sys.modules["slicer.parameterNodeWrapper"] = wrapper
    slicer.ScriptedLoadableModule = base
    slicer.parameterNodeWrapper = wrapper
    slicer.app = Application()
    slicer.modules = LoadedModules()
    slicer.dicomDatabase = None  # a test sets a DicomDatabase
    for cls in STAND_INS.values():
        setattr(slicer, cls.__name__, cls)
    if str(MODULE_DIR) not in sys.path:
        sys.path.insert(0, str(MODULE_DIR))


def new_scene() -> Any:
    """A scene as the application's is: with the node classes its modules register at start-up
    (the Segmentations module's segment editor node; slicer-core registers the others)."""
    scene = slicer.vtkMRMLScene()
    scene.RegisterNodeClass(slicer.vtkMRMLSegmentEditorNode())
    return scene


def add_views(scene: Any) -> dict[str, Any]:
    """STAND-IN for the views Slicer's layout manager puts in the application's scene: the layout
    node, the Red, Yellow and Green slice views (Axial, Sagittal, Coronal, as in the default
    layout) with their slice composite nodes, and a 3D view. Returns the composite nodes by view."""
    scene.AddNewNodeByClass("vtkMRMLLayoutNode")
    slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(scene)
    composites = {}
    for name, orientation in (("Red", "Axial"), ("Yellow", "Sagittal"), ("Green", "Coronal")):
        view = scene.CreateNodeByClass("vtkMRMLSliceNode")
        view.UnRegister(None)
        view.SetLayoutName(name)
        view.SetSingletonTag(name)
        scene.AddNode(view)
        view.SetOrientation(orientation)
        composite = scene.CreateNodeByClass("vtkMRMLSliceCompositeNode")
        composite.UnRegister(None)
        composite.SetLayoutName(name)
        composite.SetSingletonTag(name)
        composites[name] = scene.AddNode(composite)
    scene.AddNewNodeByClass("vtkMRMLViewNode").SetLayoutName("1")
    return composites


def wait_until(done: Callable[[], Any], what: str, timeout_s: float = 120.0) -> None:
    """Let Qt run (timers, signals) until ``done()`` is true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s:g} s for {what}")
        QtWidgets.QApplication.processEvents()
        time.sleep(0.02)


class ModuleSession:
    """The module as Slicer runs it: :meth:`open` (panel, widget, setup, enter), :meth:`leave`
    and :meth:`enter` (another module shown, then this one again), :meth:`close_scene`
    (File > Close scene), :meth:`unload` (the application closing)."""

    def __init__(self, widget_class: type) -> None:
        self.panel = ModulePanel()
        self.widget = widget_class(self.panel)
        self.widget.setup()
        self.enter()
        self.panel.show()

    @property
    def ui(self) -> Any:
        return self.widget.ui

    def enter(self) -> None:
        self.panel.isEntered = True
        self.widget.enter()

    def leave(self) -> None:
        self.widget.exit()
        self.panel.isEntered = False

    def close_scene(self) -> None:
        slicer.mrmlScene.Clear(0)

    def unload(self) -> None:
        self.widget.cleanup()
        self.panel.deleteLater()

    def wait_until(self, done: Callable[[], Any], what: str, timeout_s: float = 120.0) -> None:
        wait_until(done, what, timeout_s)

    def wait_idle(self, timeout_s: float = 300.0) -> None:
        """Until no job runs and every finished one has been shown."""
        wait_until(lambda: not self.widget.callbacks, "the module's jobs", timeout_s)


def connect(session: ModuleSession, url: str) -> None:
    """Type the server's address in the Server section and press Connect, as a user would."""
    session.ui.serverUrlLineEdit.text = url
    session.ui.connectButton.click()
    session.wait_idle()


def load_study(session: ModuleSession, study: str) -> None:
    """Filter the Studies table to one study, select it and press Load."""
    session.ui.studyFilterLineEdit.text = study
    session.ui.studiesTable.selectRow(0)
    session.ui.loadStudyButton.click()
    session.wait_idle()
