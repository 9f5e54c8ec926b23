"""A harness that runs the Slicer module's widget under pytest, offscreen, on real MRML.

3D Slicer cannot run here. What it gives the module is provided as follows:

* ``qt``: PySide6 (QtCore, QtGui, QtWidgets, QtUiTools), offscreen (``QT_QPA_PLATFORM=offscreen``),
  with PythonQt's manners added by :class:`PythonQtStyle`: Qt properties read and written as
  attributes (``button.enabled = False``, ``lineEdit.text``), ``name`` for the object name, and
  the string-signature ``connect('clicked()', slot)`` / ``disconnect``. A signature a widget
  lacks raises, so a misspelt signal fails here as it fails in Slicer.
* ``slicer.util.loadUI`` and ``childWidgetVariables``: Slicer's own (the slicer-core wheel's
  ``slicer/util.py``), which call ``qt.QUiLoader``: here :class:`UiLoader`, PySide6's QUiLoader
  creating the adapted widgets, and wiring the ``.ui`` file's ``<connections>`` that Qt cannot
  (signals of the stand-ins below, whose C++ signatures Python classes do not have).
* MRML, Segmentations logic, ``slicer.util`` and ``VTKObservationMixin``: the real ones (slicer-core).
* Stand-ins, each named ``STAND-IN`` in its docstring, only for what has no wheel: the compiled
  CTK/qMRML widgets (``ctkCollapsibleButton``, ``qMRMLWidget``, ``qMRMLNodeComboBox``,
  ``qMRMLSegmentEditorWidget``), the application around a module (``slicer.app``, the module
  panel with its ``isEntered``, ``slicer.ScriptedLoadableModule``'s base classes, which need the
  application), and ``slicer.parameterNodeWrapper`` (pure Python in Slicer, but not in any
  wheel: a small one here keeps the same contract, typed fields stored in the real
  ``vtkMRMLScriptedModuleNode`` and ``connectGui`` through ``SlicerParameterName``).

:func:`install` puts these in ``sys.modules``; ``conftest.py`` in this folder calls it before any
test imports the module. :class:`ModuleSession` opens the module as Slicer does (panel, setup,
enter), and leaves, closes the scene, or unloads it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import types
import typing
import unittest
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import slicer  # noqa: E402  (after the platform is chosen)
import slicer.util  # noqa: E402
import vtk  # noqa: E402
from PySide6 import QtCore, QtGui, QtUiTools, QtWidgets  # noqa: E402

MODULE_DIR = Path(__file__).resolve().parents[3] / "slicer_extension" / "BrainTumorLabel"
# C++ argument types of signals and slots that Python classes declare as ``object``
_POINTER_TYPES = ("vtkMRMLScene*", "vtkMRMLNode*", "vtkObject*")


# ---- PythonQt's manners on PySide6 objects
def _signature(signature: str) -> str:
    return bytes(QtCore.QMetaObject.normalizedSignature(signature).data()).decode()


def _python_signature(signature: str) -> str:
    for cpp in _POINTER_TYPES:
        signature = signature.replace(cpp, "PyObject")
    return signature


def _bound_signal(obj: QtCore.QObject, signature: str) -> Any:
    """The signal instance for a PythonQt signature such as ``clicked()`` or ``textChanged(QString)``."""
    normalized = _signature(signature)
    meta = QtCore.QObject.metaObject(obj)
    if meta.indexOfSignal(normalized) < 0 and meta.indexOfSignal(_python_signature(normalized)) < 0:
        raise AttributeError(f"{type(obj).__name__} has no signal {signature}")
    return object.__getattribute__(obj, normalized.split("(")[0])


#: the properties being read now (object id, name), see PythonQtStyle.__getattribute__
_READING: set[tuple[int, str]] = set()


class PythonQtStyle:
    """Mixin: a PySide6 object used as PythonQt lets Slicer's Python use Qt objects."""

    def __getattribute__(self, name: str) -> Any:
        if name[:1] != "_":
            key = (id(self), name)
            # a property read calls its C++ getter, whose override check (PySide's) asks for the
            # same name again (``sizeHint`` of a plain QWidget in a layout): that one is the method
            if key not in _READING and QtCore.QObject.metaObject(self).indexOfProperty(name) >= 0:
                _READING.add(key)
                try:
                    return QtCore.QObject.property(self, name)
                finally:
                    _READING.discard(key)
            if name == "name":
                return QtCore.QObject.objectName(self)
            if name in ("connect", "disconnect"):  # PySide6's attribute lookup would find QObject's first
                return types.MethodType(getattr(PythonQtStyle, name), self)
        return super().__getattribute__(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name[:1] != "_" and QtCore.QObject.metaObject(self).indexOfProperty(name) >= 0:
            if not QtCore.QObject.setProperty(self, name, value):
                raise AttributeError(f"cannot set {type(self).__name__}.{name} to {value!r}")
            return
        super().__setattr__(name, value)

    def connect(self, signature: str, slot: Callable[..., Any]) -> bool:
        _bound_signal(self, signature).connect(slot)  # type: ignore[arg-type]
        return True

    def disconnect(self, signature: str, slot: Callable[..., Any]) -> bool:
        _bound_signal(self, signature).disconnect(slot)  # type: ignore[arg-type]
        return True


_ADAPTED: dict[type, type] = {}


def adapted(cls: type) -> type:
    """``cls`` (a QObject class of PySide6) with :class:`PythonQtStyle`, made once per class."""
    if cls not in _ADAPTED:
        _ADAPTED[cls] = type(cls.__name__, (PythonQtStyle, cls), {"__module__": "qt"})
    return _ADAPTED[cls]


# ---- STAND-INS for compiled CTK and qMRML widgets
class qMRMLWidget(PythonQtStyle, QtWidgets.QWidget):  # noqa: N801
    """STAND-IN for qMRMLWidget: holds the scene and announces it (``mrmlSceneChanged``)."""

    mrmlSceneChanged = QtCore.Signal(object)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._scene: Any = None

    def setMRMLScene(self, scene: Any) -> None:
        self._scene = scene
        self.mrmlSceneChanged.emit(scene)

    def mrmlScene(self) -> Any:
        return self._scene


class ctkCollapsibleButton(PythonQtStyle, QtWidgets.QGroupBox):  # noqa: N801
    """STAND-IN for ctkCollapsibleButton: a titled box whose contents a click hides or shows. As
    CTK's, a child the code (or the .ui) hid stays hidden when the box opens, and a child shown
    while the box is collapsed is hidden until it opens (CTK's ``visibilityToParent``)."""

    contentsCollapsed = QtCore.Signal(bool)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._text, self._collapsed, self._forcing = "", False, False

    def _get_text(self) -> str:
        return self._text

    def _set_text(self, text: str) -> None:
        self._text = text
        self.setTitle(("\u25b8 " if self._collapsed else "\u25be ") + text)

    def _get_collapsed(self) -> bool:
        return self._collapsed

    def _set_collapsed(self, collapsed: bool) -> None:
        self._collapsed = bool(collapsed)
        self._set_text(self._text)
        self._apply()
        self.contentsCollapsed.emit(self._collapsed)

    text = QtCore.Property(str, _get_text, _set_text)
    collapsed = QtCore.Property(bool, _get_collapsed, _set_collapsed)

    # (the child's own methods are called unbound: it is still being built when it is added)
    def childEvent(self, event: QtCore.QChildEvent) -> None:
        child = event.child()
        if event.type() == QtCore.QEvent.Type.ChildAdded and QtCore.QObject.isWidgetType(child):
            QtCore.QObject.installEventFilter(child, self)  # to see the code show or hide it
        super().childEvent(event)

    def eventFilter(self, child: QtCore.QObject, event: QtCore.QEvent) -> bool:
        shown = event.type() == QtCore.QEvent.Type.ShowToParent
        if not self._forcing and (shown or event.type() == QtCore.QEvent.Type.HideToParent):
            QtCore.QObject.setProperty(child, "visibilityToParent", shown)
            if shown and self._collapsed and isinstance(child, QtWidgets.QWidget):
                self._show(child)
        return super().eventFilter(child, event)

    def _show(self, child: QtWidgets.QWidget) -> None:
        self._forcing = True
        try:
            QtWidgets.QWidget.setVisible(child, not self._collapsed and
                                         QtCore.QObject.property(child, "visibilityToParent") is not False)
        finally:
            self._forcing = False

    def _apply(self) -> None:
        for child in self.findChildren(QtWidgets.QWidget, options=QtCore.Qt.FindChildOption.FindDirectChildrenOnly):
            self._show(child)

    def showEvent(self, event: QtGui.QShowEvent) -> None:  # the .ui sets `collapsed` before the contents exist
        self._apply()
        super().showEvent(event)

    def click(self) -> None:
        self._set_collapsed(not self._collapsed)


class qMRMLNodeComboBox(PythonQtStyle, QtWidgets.QComboBox):  # noqa: N801
    """STAND-IN for qMRMLNodeComboBox: lists the scene's nodes of ``nodeTypes`` (kept up to date
    by observing the real scene), ``currentNode``/``setCurrentNode``, ``currentNodeChanged``."""

    currentNodeChanged = QtCore.Signal(object)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._scene: Any = None
        self._tags: list[int] = []
        self._types: list[str] = []
        self._none, self._children, self._add, self._remove = False, True, True, True
        self._emitted: Any = None
        self.currentIndexChanged.connect(self._changed)

    def _get_types(self) -> list[str]:
        return list(self._types)

    def _set_types(self, types_: list[str]) -> None:
        self._types = list(types_)
        self._refresh()

    def _flag(attribute: str) -> Any:  # type: ignore[misc]  # noqa: N805 - builds the class's properties
        return QtCore.Property(bool, lambda self: getattr(self, attribute),
                               lambda self, value: (setattr(self, attribute, bool(value)), self._refresh()))

    nodeTypes = QtCore.Property("QStringList", _get_types, _set_types)
    noneEnabled = _flag("_none")
    showChildNodeTypes = _flag("_children")
    addEnabled = _flag("_add")
    removeEnabled = _flag("_remove")

    def setMRMLScene(self, scene: Any) -> None:
        if self._scene is not None:
            for tag in self._tags:
                self._scene.RemoveObserver(tag)
        self._scene, self._tags = scene, []
        if scene is not None:
            for event in (scene.NodeAddedEvent, scene.NodeRemovedEvent, scene.EndCloseEvent):
                self._tags.append(scene.AddObserver(event, lambda caller, event: self._refresh()))
        self._refresh()

    def mrmlScene(self) -> Any:
        return self._scene

    def nodes(self) -> list[Any]:
        if self._scene is None:
            return []
        found = []
        for nodeType in self._types:
            for i in range(self._scene.GetNumberOfNodesByClass(nodeType)):
                node = self._scene.GetNthNodeByClass(i, nodeType)
                if (self._children or node.GetClassName() == nodeType) and node not in found:
                    found.append(node)
        return found

    def _refresh(self) -> None:
        current = QtWidgets.QComboBox.currentData(self)
        self.blockSignals(True)
        self.clear()
        if self._none:
            self.addItem("None", None)
        for node in self.nodes():
            self.addItem(node.GetName(), node.GetID())
        index = self.findData(current) if current is not None else -1
        self.setCurrentIndex(index if index >= 0 else (0 if QtWidgets.QComboBox.count(self) else -1))
        self.blockSignals(False)
        self._changed()

    def currentNodeID(self) -> str:
        return QtWidgets.QComboBox.currentData(self) or ""

    def currentNode(self) -> Any:
        nodeId = self.currentNodeID()
        return self._scene.GetNodeByID(nodeId) if nodeId and self._scene is not None else None

    def setCurrentNode(self, node: Any) -> None:
        index = self.findData(node.GetID()) if node is not None else (0 if self._none else -1)
        self.setCurrentIndex(index)

    def _changed(self, *unused: Any) -> None:
        node = self.currentNode()
        if node is not self._emitted:
            self._emitted = node
            self.currentNodeChanged.emit(node)


class qMRMLSegmentEditorWidget(qMRMLWidget):  # noqa: N801
    """STAND-IN for qMRMLSegmentEditorWidget: keeps its selections in the real segment editor node
    (segmentation, source volume) as the real widget does, and the active effect by name. No
    effect runs here: tests edit segments through MRML, as an effect does in the end."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._editorNode: Any = None
        self._effect: str | None = None
        frame = QtWidgets.QLabel("3D Slicer's Segment Editor\n(paint, erase, threshold, islands, ... on NCR, ED, ET)",
                                 self)
        frame.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        frame.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(frame)
        self.setMinimumHeight(90)

    def setMRMLSegmentEditorNode(self, node: Any) -> None:
        self._editorNode = node

    def mrmlSegmentEditorNode(self) -> Any:
        return self._editorNode

    def setSegmentationNode(self, node: Any) -> None:
        if self._editorNode is not None:
            self._editorNode.SetAndObserveSegmentationNode(node)

    def segmentationNode(self) -> Any:
        return self._editorNode.GetSegmentationNode() if self._editorNode is not None else None

    def setSourceVolumeNode(self, node: Any) -> None:
        if self._editorNode is not None:
            self._editorNode.SetAndObserveSourceVolumeNode(node)

    def sourceVolumeNode(self) -> Any:
        return self._editorNode.GetSourceVolumeNode() if self._editorNode is not None else None

    def setActiveEffectByName(self, name: str) -> None:
        self._effect = name or None

    def setActiveEffect(self, effect: Any) -> None:
        if effect is not None:
            raise TypeError("the stand-in only switches effects off (None) or on by name")
        self._effect = None

    def activeEffect(self) -> str | None:
        return self._effect


STAND_INS: dict[str, type] = {cls.__name__: cls for cls in (qMRMLWidget, ctkCollapsibleButton, qMRMLNodeComboBox,
                                                            qMRMLSegmentEditorWidget)}


# ---- the .ui loader
class UiLoader(QtUiTools.QUiLoader):
    """PySide6's QUiLoader making PythonQt-style widgets and the stand-ins; after loading a file,
    the ``.ui`` connections whose signals only a stand-in has are made here."""

    def createWidget(self, className: str, parent: QtWidgets.QWidget | None = None, name: str = "") -> Any:
        cls = STAND_INS.get(className) or (adapted(getattr(QtWidgets, className)) if hasattr(QtWidgets, className)
                                           else None)
        if cls is None:
            raise LookupError(f"the harness has no widget {className} (neither Qt's nor a stand-in)")
        widget = cls(parent)
        widget.setObjectName(name)
        return widget

    def load(self, device: Any, parent: Any = None) -> Any:
        widget = super().load(device, parent) if parent is not None else super().load(device)
        if widget is not None and isinstance(device, QtCore.QFile):
            _connect_stand_in_signals(widget, Path(device.fileName()))
        return widget


def _connect_stand_in_signals(root: QtWidgets.QWidget, ui_file: Path) -> None:
    def named(name: str) -> Any:
        return root if QtCore.QObject.objectName(root) == name else root.findChild(QtCore.QObject, name)
    for connection in ElementTree.parse(ui_file).getroot().iter("connection"):
        sender, receiver = named(connection.findtext("sender", "")), named(connection.findtext("receiver", ""))
        signal, slot = connection.findtext("signal", ""), connection.findtext("slot", "")
        if sender is None or receiver is None:
            raise LookupError(f"{ui_file.name}: a connection names a widget that does not exist: "
                              f"{connection.findtext('sender')} -> {connection.findtext('receiver')}")
        if QtCore.QObject.metaObject(sender).indexOfSignal(_signature(signal)) >= 0:
            continue  # a Qt signal: QUiLoader has connected it
        _bound_signal(sender, signal).connect(getattr(receiver, slot.split("(")[0]))


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


# ---- STAND-INS for the application around a module
class ModulePanel(qMRMLWidget):
    """STAND-IN for qSlicerScriptedLoadableModuleWidget: the module's panel, a vertical layout,
    and ``isEntered`` (true while the module is the one shown)."""

    def __init__(self) -> None:
        super().__init__(None)
        self._entered = False
        self.setLayout(QtWidgets.QVBoxLayout())
        self.resize(460, 1200)

    def _get_entered(self) -> bool:
        return self._entered

    def _set_entered(self, value: bool) -> None:
        self._entered = bool(value)

    isEntered = QtCore.Property(bool, _get_entered, _set_entered)


class Application:
    """STAND-IN for ``slicer.app``: what the module's self-test calls on it."""

    @staticmethod
    def processEvents() -> None:
        QtWidgets.QApplication.processEvents()


class LoadedModules:
    """STAND-IN for ``slicer.modules``: the application's loaded modules, here those whose logic
    ``slicer.util``'s segment functions call; the logics are the real ones (slicer-core), on the scene."""

    class segmentations:  # noqa: N801
        @staticmethod
        def logic() -> Any:
            return _on_scene(slicer.vtkSlicerSegmentationsModuleLogic())

    class volumes:  # noqa: N801
        @staticmethod
        def logic() -> Any:
            return _on_scene(slicer.vtkSlicerVolumesLogic())


def _on_scene(logic: Any) -> Any:
    logic.SetMRMLScene(slicer.mrmlScene)
    return logic


class ScriptedLoadableModule:
    """STAND-IN for Slicer's base class (it needs the application): the module's metadata."""

    def __init__(self, parent: Any) -> None:
        self.parent = parent
        self.moduleName = type(self).__name__


class ScriptedLoadableModuleWidget:
    """STAND-IN for Slicer's base class: the panel (a new one when none is given, then set up and
    shown, as Slicer does), its layout, ``resourcePath``; Developer mode off (no Reload section)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__()
        self.moduleName = type(self).__name__.removesuffix("Widget")
        self.developerMode = False
        self.parent = parent if parent else ModulePanel()
        self.layout = self.parent.layout()
        if not parent:
            self.setup()
            self.parent.show()

    def resourcePath(self, filename: str) -> str:
        return str(Path(sys.modules[type(self).__module__].__file__ or "").parent / "Resources" / filename)

    def setup(self) -> None:
        pass

    def cleanup(self) -> None:
        pass


class ScriptedLoadableModuleLogic:
    """STAND-IN for Slicer's base class: the module's singleton parameter node in ``slicer.mrmlScene``."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__()
        self.moduleName = type(self).__name__.removesuffix("Logic")

    def getParameterNode(self) -> Any:
        scene = slicer.mrmlScene
        node = scene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
        if node is None:
            node = scene.CreateNodeByClass("vtkMRMLScriptedModuleNode")
            node.UnRegister(None)
            node.SetSingletonTag(self.moduleName)
            node.SetName(scene.GenerateUniqueName(self.moduleName))
            node = scene.AddNode(node)
        if node.GetAttribute("ModuleName") != self.moduleName:  # Close scene resets the node's attributes
            node.SetAttribute("ModuleName", self.moduleName)
        return node


class ScriptedLoadableModuleTest(unittest.TestCase):
    """STAND-IN for Slicer's base class: ``delayDisplay`` logs and keeps its messages."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.messages: list[str] = []

    def delayDisplay(self, message: str, requestedDelay: Any = None, msec: Any = None) -> None:
        logging.info("delayDisplay: %s", message)
        self.messages.append(message)


# ---- STAND-INS for Slicer's DICOM database (ctkDICOMDatabase) and DICOM loading (DICOMLib)
class DicomDatabase:
    """STAND-IN for ``slicer.dicomDatabase`` (CTK's ctkDICOMDatabase): the calls the module makes,
    answered from the DICOM files under a folder, read with pydicom."""

    def __init__(self, folder: Path) -> None:
        import pydicom

        self._files: dict[str, Any] = {}
        for path in sorted(Path(folder).rglob("*.dcm")):
            self._files[str(path)] = pydicom.dcmread(str(path), stop_before_pixels=True)

    def _where(self, **match: str) -> list[Any]:
        return [d for d in self._files.values() if all(str(d.get(k, "")) == v for k, v in match.items())]

    @staticmethod
    def _unique(values: Any) -> list[str]:
        return list(dict.fromkeys(str(v) for v in values))

    def patients(self) -> list[str]:
        return self._unique(d.PatientID for d in self._files.values())

    def nameForPatient(self, patient: str) -> str:
        return str(self._where(PatientID=patient)[0].PatientName)

    def studiesForPatient(self, patient: str) -> list[str]:
        return self._unique(d.StudyInstanceUID for d in self._where(PatientID=patient))

    def fieldForStudy(self, field: str, study: str) -> str:
        return str(self._where(StudyInstanceUID=study)[0].get(field, ""))

    def seriesForStudy(self, study: str) -> list[str]:
        return self._unique(d.SeriesInstanceUID for d in self._where(StudyInstanceUID=study))

    def filesForSeries(self, series: str) -> list[str]:
        return [f for f, d in self._files.items() if str(d.SeriesInstanceUID) == series]

    def fileValue(self, file: str, tag: str) -> str:
        element = self._files[file].get(int(tag.replace(",", ""), 16))
        if element is None or element.value is None:
            return ""
        return "\\".join(str(v) for v in element.value) if element.VM > 1 else str(element.value)


def loadSeriesByUID(seriesUIDs: list[str]) -> list[str]:
    """STAND-IN for ``DICOMLib.DICOMUtils.loadSeriesByUID``: each series read with SimpleITK (as
    Slicer's scalar volume plugin reads it with ITK) into a scalar volume node; the node IDs."""
    import SimpleITK as sitk

    ids = []
    for uid in seriesUIDs:
        reader = sitk.ImageSeriesReader()
        files = slicer.dicomDatabase.filesForSeries(uid)
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(Path(files[0]).parent), uid))
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"dicom-{uid}.nrrd"
        sitk.WriteImage(reader.Execute(), str(path))
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", uid)
        storage = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
        storage.SetFileName(str(path))
        storage.ReadData(node)
        node.SetAndObserveStorageNodeID(storage.GetID())
        path.unlink()
        ids.append(node.GetID())
    return ids


# ---- STAND-IN for slicer.parameterNodeWrapper (see the module docstring)
_NODE_CLASSES = ("vtkMRMLNode",)


def _is_node_type(datatype: Any) -> bool:
    return isinstance(datatype, type) and issubclass(datatype, slicer.vtkMRMLNode)


class _Binding:
    """One widget bound to one parameter, both ways."""

    def __init__(self, wrapper: Any, name: str, widget: Any) -> None:
        self.wrapper, self.name, self.widget = wrapper, name, widget
        if isinstance(widget, qMRMLNodeComboBox):
            self.signal, self.read, self.write = widget.currentNodeChanged, widget.currentNode, widget.setCurrentNode
        elif isinstance(widget, QtWidgets.QLineEdit):
            self.signal = widget.textChanged
            self.read = lambda: QtWidgets.QLineEdit.text(widget)
            self.write = lambda value: QtWidgets.QLineEdit.setText(widget, value)
        else:
            raise TypeError(f"the parameter node stand-in binds line edits and node boxes, not {type(widget).__name__}")
        self.signal.connect(self.toNode)

    def toNode(self, *unused: Any) -> None:
        if getattr(self.wrapper, self.name) != self.read():
            setattr(self.wrapper, self.name, self.read())

    def toWidget(self) -> None:
        value = getattr(self.wrapper, self.name)
        if self.read() != value:
            self.write(value)

    def disconnect(self) -> None:
        self.signal.disconnect(self.toNode)


def parameterNodeWrapper(cls: type) -> type:
    """STAND-IN for ``slicer.parameterNodeWrapper.parameterNodeWrapper``: the class's annotated
    fields (read with ``typing.get_type_hints``, as Slicer does) become properties stored in the
    wrapped ``vtkMRMLScriptedModuleNode``: plain values as parameters, MRML nodes as node
    references; defaults are written when missing; ``connectGui``/``disconnectGui`` bind the
    widgets whose ``SlicerParameterName`` property names a field."""
    hints = typing.get_type_hints(cls)
    defaults = {name: getattr(cls, name, None) for name in hints}
    namespace: dict[str, Any] = {"__doc__": cls.__doc__, "__module__": cls.__module__}

    def field(name: str, datatype: Any) -> property:
        if _is_node_type(datatype):
            return property(lambda self: self.parameterNode.GetNodeReference(name),
                            lambda self, node: self.parameterNode.SetNodeReferenceID(
                                name, node.GetID() if node is not None else None))
        convert = (lambda text: text == "True") if datatype is bool else datatype
        return property(lambda self: convert(self.parameterNode.GetParameter(name)),
                        lambda self, value: self.parameterNode.SetParameter(name, str(value)))

    for name, datatype in hints.items():
        namespace[name] = field(name, datatype)

    def __init__(self: Any, parameterNode: Any) -> None:
        self.parameterNode = parameterNode
        for name, datatype in hints.items():
            if not _is_node_type(datatype) and not parameterNode.HasParameter(name):
                setattr(self, name, defaults[name] if defaults[name] is not None else datatype())

    def connectGui(self: Any, gui: Any) -> Any:
        widgets = vars(gui).values() if not isinstance(gui, QtWidgets.QWidget) else gui.findChildren(QtWidgets.QWidget)
        bindings = [_Binding(self, str(widget.property("SlicerParameterName")), widget) for widget in widgets
                    if isinstance(widget, QtWidgets.QWidget) and widget.property("SlicerParameterName")]
        for binding in bindings:
            if binding.name not in hints:
                raise ValueError(f"a widget names parameter {binding.name!r}, which {cls.__name__} does not have")
            binding.toWidget()
        tag = self.parameterNode.AddObserver(vtk.vtkCommand.ModifiedEvent,
                                             lambda caller, event: [b.toWidget() for b in bindings])
        return tag, bindings

    def disconnectGui(self: Any, guiTag: Any) -> None:
        tag, bindings = guiTag
        self.parameterNode.RemoveObserver(tag)
        for binding in bindings:
            binding.disconnect()

    namespace.update(__init__=__init__, connectGui=connectGui, disconnectGui=disconnectGui)
    return type(cls.__name__, (), namespace)


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
