"""STAND-INS for the compiled CTK and qMRML widgets the module's panel uses, and the ``.ui`` loader that
makes them (PySide6's QUiLoader, plus the ``.ui`` connections whose signals only a stand-in has).
Each stand-in says ``STAND-IN`` in its docstring; ``_slicer_harness.py`` says why they exist."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtUiTools, QtWidgets

from _pythonqt import PythonQtStyle, adapted, bound_signal, normalized_signature


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
        if QtCore.QObject.metaObject(sender).indexOfSignal(normalized_signature(signal)) >= 0:
            continue  # a Qt signal: QUiLoader has connected it
        bound_signal(sender, signal).connect(getattr(receiver, slot.split("(")[0]))
