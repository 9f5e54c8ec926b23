"""STAND-INS for the application around a module: its panel, ``slicer.app``, ``slicer.modules``,
``slicer.ScriptedLoadableModule``'s base classes, Slicer's DICOM database and loading (``DICOMLib``) and
``slicer.parameterNodeWrapper``. Each says ``STAND-IN`` in its docstring; ``_slicer_harness.py`` says
why they exist and installs them."""

from __future__ import annotations

import logging
import os
import sys
import typing
import unittest
from pathlib import Path
from typing import Any

import slicer
import vtk
from PySide6 import QtCore, QtWidgets

import _pythonqt  # noqa: F401  (the platform is chosen before slicer is imported)
from _stand_in_widgets import qMRMLNodeComboBox, qMRMLWidget


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
