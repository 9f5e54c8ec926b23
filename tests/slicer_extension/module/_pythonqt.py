"""PythonQt's manners on PySide6 objects, for the module tests' harness (``_slicer_harness.py``):
Qt properties read and written as attributes, ``name`` for the object name, and string-signature
``connect('clicked()', slot)`` / ``disconnect``; a signature a widget lacks raises, as in Slicer."""

from __future__ import annotations

import os
import types
from collections.abc import Callable
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6 import QtCore  # noqa: E402  (after the platform is chosen)

# C++ argument types of signals and slots that Python classes declare as ``object``
_POINTER_TYPES = ("vtkMRMLScene*", "vtkMRMLNode*", "vtkObject*")


def normalized_signature(signature: str) -> str:
    return bytes(QtCore.QMetaObject.normalizedSignature(signature).data()).decode()


def _python_signature(signature: str) -> str:
    for cpp in _POINTER_TYPES:
        signature = signature.replace(cpp, "PyObject")
    return signature


def bound_signal(obj: QtCore.QObject, signature: str) -> Any:
    """The signal instance for a PythonQt signature such as ``clicked()`` or ``textChanged(QString)``."""
    normalized = normalized_signature(signature)
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
        bound_signal(self, signature).connect(slot)  # type: ignore[arg-type]
        return True

    def disconnect(self, signature: str, slot: Callable[..., Any]) -> bool:
        bound_signal(self, signature).disconnect(slot)  # type: ignore[arg-type]
        return True


_ADAPTED: dict[type, type] = {}


def adapted(cls: type) -> type:
    """``cls`` (a QObject class of PySide6) with :class:`PythonQtStyle`, made once per class."""
    if cls not in _ADAPTED:
        _ADAPTED[cls] = type(cls.__name__, (PythonQtStyle, cls), {"__module__": "qt"})
    return _ADAPTED[cls]
