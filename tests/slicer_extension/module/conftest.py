"""The module tests' Slicer: the harness of ``_slicer_harness.py`` installed before any test here
imports the module, a fresh real MRML scene per test as ``slicer.mrmlScene``, and the module
opened in it (``session``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import slicer

import _slicer_harness

_slicer_harness.install()


@pytest.fixture
def scene() -> Iterator[slicer.vtkMRMLScene]:
    """A fresh MRML scene, also as ``slicer.mrmlScene`` (as in the application)."""
    scene = _slicer_harness.new_scene()
    slicer.mrmlScene = scene
    yield scene
    scene.Clear(1)


@pytest.fixture
def session(scene: slicer.vtkMRMLScene) -> Iterator[_slicer_harness.ModuleSession]:
    """The module opened in that scene as Slicer opens it (panel, widget, setup, enter); unloaded
    after the test."""
    from BrainTumorLabel import BrainTumorLabelWidget  # after the harness is installed

    session = _slicer_harness.ModuleSession(BrainTumorLabelWidget)
    yield session
    session.unload()
