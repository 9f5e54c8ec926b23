"""The module's scene state and MRML work, apart from the GUI (Slicer's Logic half):
``BrainTumorLabelParameterNode`` (what the module remembers in the scene) and
``BrainTumorLabelLogic`` (volumes in, the server's label as a segmentation, the segmentation back
to a label on the t1c grid, the module's Segment Editor node). No GUI, no network;
``tests/slicer_extension/module/test_module_logic.py`` runs it on a real MRML scene.

The one part of ``BrainTumorLabelLib`` that needs Slicer (``slicer``, ``vtk``, ``numpy``): the
other files of the package use the standard library only and import nothing from here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import slicer
import vtk
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

from BrainTumorLabelLib.client import SEQUENCES
from BrainTumorLabelLib.labels import REGIONS, SEGMENTS
from BrainTumorLabelLib.sequences import DEFAULT_PATTERNS, assign, format_patterns, parse_patterns
from BrainTumorLabelLib.submissions import label_digest

MODULE_NAME = "BrainTumorLabel"
DEFAULT_SERVER_URL = "http://127.0.0.1:8000"
SEGMENT_EDITOR_TAG = f"{MODULE_NAME}SegmentEditor"


# Slicer reads these annotations with typing.get_type_hints at class creation, on Slicer's own
# Python (3.9 in Slicer 5.8): keep them to names that evaluate there (no ``X | None``).
@parameterNodeWrapper
class BrainTumorLabelParameterNode:
    """What the module remembers in the scene (and a saved scene restores): the server, the
    annotator, the name patterns, the study, its four volumes and its segmentation. The widget
    binds the first seven to its controls (``SlicerParameterName`` in the .ui file)."""

    serverUrl: str = DEFAULT_SERVER_URL
    studyId: str = ""
    annotator: str = ""
    patterns: str = format_patterns(DEFAULT_PATTERNS)
    t1n: slicer.vtkMRMLScalarVolumeNode
    t1c: slicer.vtkMRMLScalarVolumeNode
    t2w: slicer.vtkMRMLScalarVolumeNode
    t2f: slicer.vtkMRMLScalarVolumeNode
    segmentation: slicer.vtkMRMLSegmentationNode


class BrainTumorLabelLogic(ScriptedLoadableModuleLogic):
    """The MRML work: volumes in, the server's label as a segmentation, the segmentation back to
    a label on the t1c grid. No GUI, no network."""

    def __init__(self, scene: Any = None) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.scene = scene if scene is not None else slicer.mrmlScene

    def getParameterNode(self) -> BrainTumorLabelParameterNode:
        wrapper: Any = BrainTumorLabelParameterNode  # @parameterNodeWrapper makes it take the MRML node
        return wrapper(super().getParameterNode())

    def getSegmentEditorNode(self) -> Any:
        """The module's own Segment Editor node: one per scene (a singleton, as Segment Editor
        keeps its own), created when missing, e.g. after the scene was closed."""
        node = self.scene.GetSingletonNode(SEGMENT_EDITOR_TAG, "vtkMRMLSegmentEditorNode")
        if node is None:
            node = self.scene.CreateNodeByClass("vtkMRMLSegmentEditorNode")
            node.UnRegister(None)  # the Python variable owns it until the scene does
            node.SetSingletonTag(SEGMENT_EDITOR_TAG)
            node.SetName(f"{MODULE_NAME} segment editor")
            node = self.scene.AddNode(node)
        return node

    def showStudy(self, volumes: dict[str, Any]) -> None:
        """t1c in every slice view's background, FLAIR as the (hidden) foreground, ready to fade in."""
        slicer.util.setSliceViewerLayers(background=volumes.get("t1c"), foreground=volumes.get("t2f"),
                                         foregroundOpacity=0.0)

    def showBeside(self, current: Any, other: Any, otherSegmentation: Any = None,
                   currentSegmentation: Any = None) -> bool:
        """Another study beside the current one: Slicer's side-by-side layout, the current t1c in
        the Red view, the other's in the Yellow one (same orientation), the two views linked (a
        scroll or zoom in one moves both); each segmentation shown only in its own study's views.
        False when the scene has no Red and Yellow slice views (then nothing changes)."""
        composites = self._byLayoutName("vtkMRMLSliceCompositeNode")
        slices = self._byLayoutName("vtkMRMLSliceNode")
        if not {"Red", "Yellow"} <= set(composites) or not {"Red", "Yellow"} <= set(slices):
            return False
        layout = self.scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
        if layout is not None:
            layout.SetViewArrangement(slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView)
        slices["Yellow"].SetOrientation(slices["Red"].GetOrientation())
        for name, volume in (("Red", current), ("Yellow", other)):
            composite = composites[name]
            composite.SetBackgroundVolumeID(volume.GetID() if volume is not None else None)
            composite.SetForegroundVolumeID(None)
            composite.SetLinkedControl(True)
        yellowId = slices["Yellow"].GetID()
        if otherSegmentation is not None:
            self._showOnlyIn(otherSegmentation, [yellowId])
        if currentSegmentation is not None:
            views = []
            for i in range(self.scene.GetNumberOfNodesByClass("vtkMRMLAbstractViewNode")):
                viewId = self.scene.GetNthNodeByClass(i, "vtkMRMLAbstractViewNode").GetID()
                if viewId != yellowId:
                    views.append(viewId)
            self._showOnlyIn(currentSegmentation, views)
        return True

    def _byLayoutName(self, className: str) -> dict[str, Any]:
        nodes: dict[str, Any] = {}
        for i in range(self.scene.GetNumberOfNodesByClass(className)):
            node = self.scene.GetNthNodeByClass(i, className)
            nodes.setdefault(node.GetLayoutName(), node)
        return nodes

    @staticmethod
    def _showOnlyIn(displayable: Any, viewIds: list[str]) -> None:
        display = displayable.GetDisplayNode()
        if display is None:
            return
        display.RemoveAllViewNodeIDs()
        for viewId in viewIds:
            display.AddViewNodeID(viewId)

    # ---- volumes
    def loadVolume(self, path: Path, name: str, labelmap: bool = False) -> Any:
        """A volume node read from ``path`` (NIfTI, NRRD, ...), with its storage node."""
        node = self.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode",
                                            name)
        storage = self.scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
        storage.SetFileName(str(path))
        if not storage.ReadData(node):
            self.scene.RemoveNode(node)
            self.scene.RemoveNode(storage)
            raise ValueError(f"cannot read {Path(path).name} as a volume")
        node.SetAndObserveStorageNodeID(storage.GetID())
        return node

    def loadSequences(self, files: dict[str, Path], studyId: str) -> dict[str, Any]:
        """The four sequence files as volumes named ``<study> <sequence>``."""
        return {sequence: self.loadVolume(files[sequence], f"{studyId} {sequence}") for sequence in SEQUENCES}

    @staticmethod
    def segmentationName(studyId: str) -> str:
        """The name of a study's tumor segmentation node: ``<study> tumor``."""
        return f"{studyId} tumor"

    def loadedStudy(self, studyId: str) -> tuple[dict[str, Any], Any] | None:
        """The four volumes (``<study> <sequence>``, as :meth:`loadSequences` names them) and the
        tumor segmentation (:meth:`segmentationName`) of a study already in the scene, else None
        (one missing)."""
        volumes = {sequence: self.scene.GetFirstNodeByName(f"{studyId} {sequence}") for sequence in SEQUENCES}
        segmentation = self.scene.GetFirstNodeByName(self.segmentationName(studyId))
        if segmentation is None or any(volume is None for volume in volumes.values()):
            return None
        return volumes, segmentation

    def volumesFromScene(self, patterns: str) -> tuple[dict[str, Any], tuple[str, ...]]:
        """Scalar volumes in the scene assigned to the sequences by name (see
        ``BrainTumorLabelLib.sequences``); returns the assignment and the sequences not found."""
        nodes: dict[str, Any] = {}
        for i in range(self.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")):
            node = self.scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
            if node.GetClassName() == "vtkMRMLScalarVolumeNode":  # not labelmaps
                nodes.setdefault(node.GetName(), node)
        found = assign(list(nodes), parse_patterns(patterns))
        return {s: nodes[name] for s, name in found.volumes.items()}, found.missing

    @staticmethod
    def dicomStudies(database: Any) -> list[tuple[str, str]]:
        """``(label, StudyInstanceUID)`` of each study in Slicer's DICOM database (``slicer.dicomDatabase``,
        None when there is none); the label is the patient's name, the study date and description."""
        studies = []
        for patient in database.patients() if database is not None else []:
            for study in database.studiesForPatient(patient):
                parts = (database.nameForPatient(patient), database.fieldForStudy("StudyDate", study),
                         database.fieldForStudy("StudyDescription", study))
                studies.append((" ".join(part.strip() for part in parts if part and part.strip()), study))
        return studies

    def loadDicomSeries(self, seriesBySequence: dict[str, str], studyUid: str) -> dict[str, Any]:
        """The series chosen for each sequence loaded by Slicer's DICOM plugins, named ``<study> <sequence>``."""
        from DICOMLib import DICOMUtils  # Slicer's DICOM module, there once the application has started

        volumes = {}
        for sequence, seriesUid in seriesBySequence.items():
            nodeIds = DICOMUtils.loadSeriesByUID([seriesUid])
            if not nodeIds:
                raise ValueError(f"Slicer could not load the {sequence} series {seriesUid}")
            node = self.scene.GetNodeByID(nodeIds[0])
            node.SetName(f"{studyUid} {sequence}")
            volumes[sequence] = node
        return volumes

    # ---- segmentation
    def segmentationFromLabel(self, labelPath: Path, reference: Any, name: str) -> Any:
        """The server's label file (values 1 NCR, 2 ED, 3 ET) as a segmentation node with segments
        NCR, ED and ET in standard terminology and colours, on the t1c node's geometry (so
        Slicer's DICOM SEG export references it). Segments the label lacks are added empty, so
        the annotator can draw them."""
        labelmap = self.loadVolume(labelPath, f"{name} label", labelmap=True)
        try:
            segmentation = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
            segmentation.CreateDefaultDisplayNodes()
            segmentation.SetReferenceImageGeometryParameterFromVolumeNode(reference)
            if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation):
                raise ValueError(f"cannot import {Path(labelPath).name} into a segmentation")
            byValue = {}
            content = segmentation.GetSegmentation()
            for i in range(content.GetNumberOfSegments()):
                segment = content.GetNthSegment(i)
                byValue[segment.GetLabelValue()] = segment
            for spec in SEGMENTS:
                segment = byValue.get(spec.value)
                if segment is None:
                    content.AddEmptySegment(spec.name, spec.name, list(spec.colour))
                    segment = content.GetSegment(spec.name)
                self._describe(segment, spec)
            return segmentation
        finally:
            self.scene.RemoveNode(labelmap.GetStorageNode())
            self.scene.RemoveNode(labelmap)

    @staticmethod
    def _describe(segment: Any, spec: Any) -> None:
        segment.SetName(spec.name)
        segment.SetColor(*spec.colour)
        # the terminology tag: what SetTerminology() (from Slicer 5.10 on) writes; Slicer 5.8 has only this
        segment.SetTag(segment.GetTerminologyEntryTagName(), spec.terminology())

    def labelArray(self, segmentation: Any, reference: Any) -> np.ndarray:
        """The segmentation as one label array on the reference volume's grid (k, j, i), by
        segment name: NCR 1, ED 2, ET 3; where segments overlap, ET wins, then NCR. Segments
        with other names are not exported."""
        shape = tuple(reversed(reference.GetImageData().GetDimensions()))
        label = np.zeros(shape, np.uint8)
        content = segmentation.GetSegmentation()
        for spec in sorted(SEGMENTS, key=lambda s: {"ED": 0, "NCR": 1, "ET": 2}[s.name]):
            segmentId = content.GetSegmentIdBySegmentName(spec.name)
            if not segmentId:
                continue
            mask = self._segmentMask(segmentation, segmentId, reference)
            label[mask] = spec.value
        return label

    def _segmentMask(self, segmentation: Any, segmentId: str, reference: Any) -> np.ndarray:
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segmentId)
        labelmap = self.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "export")
        try:
            if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                    segmentation, ids, labelmap, reference, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY):
                raise ValueError(f"cannot export segment {segmentId}")
            return slicer.util.arrayFromVolume(labelmap) > 0
        finally:
            self.scene.RemoveNode(labelmap)

    def writeLabel(self, segmentation: Any, reference: Any, path: Path) -> str:
        """Write the segmentation as a label file (values 1/2/3) on the reference volume's grid;
        returns the digest of its voxels (what was submitted, see ``SubmissionLedger``)."""
        values = self.labelArray(segmentation, reference)
        labelmap = self.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "submitted label")
        storage = self.scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
        try:
            matrix = vtk.vtkMatrix4x4()
            reference.GetIJKToRASMatrix(matrix)
            labelmap.SetIJKToRASMatrix(matrix)
            slicer.util.updateVolumeFromArray(labelmap, values)
            storage.SetFileName(str(path))
            storage.SetUseCompression(True)
            if not storage.WriteData(labelmap):
                raise ValueError(f"cannot write {path}")
        finally:
            self.scene.RemoveNode(storage)
            self.scene.RemoveNode(labelmap)
        return label_digest(values.tobytes(), values.shape)

    def volumesMl(self, segmentation: Any, reference: Any) -> dict[str, float]:
        """Volumes (mL) of NCR, ED, ET and of the regions TC and WT, as the server reports them."""
        values = self.labelArray(segmentation, reference)
        voxelMl = float(np.prod(reference.GetSpacing())) / 1000.0
        counts = np.bincount(values.ravel(), minlength=4)
        volumes = {spec.name: round(float(counts[spec.value]) * voxelMl, 2) for spec in SEGMENTS}
        for region in ("TC", "WT"):
            volumes[region] = round(float(sum(counts[v] for v in REGIONS[region])) * voxelMl, 2)
        return volumes

    def saveSegmentation(self, segmentation: Any, path: Path) -> Path:
        """The segmentation as ``.seg.nrrd`` (segment names, colours and terminology kept)."""
        storage = self.scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
        try:
            storage.SetFileName(str(path))
            if not storage.WriteData(segmentation):
                raise ValueError(f"cannot write {path}")
        finally:
            self.scene.RemoveNode(storage)
        return Path(path)
