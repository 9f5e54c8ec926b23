"""The module's Logic on real MRML (the ``slicer-core`` wheel): sequences in, the server's label as
segments NCR/ED/ET with standard terminology and colours, and back to a label on the t1c grid
that the server accepts voxel for voxel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
import slicerio

from lib.transforms import Grid
from lib.transforms.io import check_label

from _cases import make_studies, t1c_path, truth_path
from _slicer_harness import add_views
from BrainTumorLabelLib.labels import SEGMENTS
from BrainTumorLabelLib.logic import BrainTumorLabelLogic


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("studies")
    return folder / make_studies(folder, 1, seed=45)[0]


def _files(study: Path) -> dict[str, Path]:
    return {s: next(study.glob(f"*-{s}.nii.gz")) for s in ("t1n", "t1c", "t2w", "t2f")}


def _segments(segmentation) -> dict[str, object]:
    content = segmentation.GetSegmentation()
    return {content.GetNthSegment(i).GetName(): content.GetNthSegment(i) for i in range(content.GetNumberOfSegments())}


def test_the_four_sequences_become_named_volumes(scene, study):
    volumes = BrainTumorLabelLogic(scene).loadSequences(_files(study), "case")
    assert {s: v.GetName() for s, v in volumes.items()} == {s: f"case {s}" for s in ("t1n", "t1c", "t2w", "t2f")}
    assert volumes["t1c"].GetImageData().GetDimensions() == sitk.ReadImage(str(t1c_path(study))).GetSize()


def test_the_servers_label_becomes_ncr_ed_et_segments_in_standard_terminology(scene, study):
    logic = BrainTumorLabelLogic(scene)
    t1c = logic.loadSequences(_files(study), "case")["t1c"]
    segmentation = logic.segmentationFromLabel(truth_path(study), t1c, "case tumor")
    segments = _segments(segmentation)
    assert sorted(segments) == ["ED", "ET", "NCR"]
    for spec in SEGMENTS:
        segment = segments[spec.name]
        assert segment.GetColor() == pytest.approx(spec.colour)
        terminology = segment.GetTerminology() if hasattr(segment, "GetTerminology") else \
            segment.GetTag(segment.GetTerminologyEntryTagName())
        assert spec.property_type.value in terminology and "49755003" in terminology
    assert segmentation.GetNodeReference(segmentation.GetReferenceImageGeometryReferenceRole()) is t1c
    assert scene.GetNumberOfNodesByClass("vtkMRMLLabelMapVolumeNode") == 0  # the import leaves nothing behind


def test_a_label_written_back_is_the_servers_label_voxel_for_voxel(scene, study, tmp_path):
    logic = BrainTumorLabelLogic(scene)
    t1c = logic.loadSequences(_files(study), "case")["t1c"]
    segmentation = logic.segmentationFromLabel(truth_path(study), t1c, "case tumor")
    written = tmp_path / "final.nii.gz"
    logic.writeLabel(segmentation, t1c, written)
    reference = sitk.ReadImage(str(t1c_path(study)))
    accepted = check_label(sitk.ReadImage(str(written)), Grid.of(reference), "case", written)  # what the server does
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(truth_path(study))))
    assert np.array_equal(sitk.GetArrayFromImage(accepted), truth)
    volumes = logic.volumesMl(segmentation, t1c)
    voxel_ml = float(np.prod(reference.GetSpacing())) / 1000.0
    assert volumes["WT"] == pytest.approx(float((truth > 0).sum()) * voxel_ml, abs=0.01)


def test_a_file_whose_axes_slicer_reorders_comes_back_on_the_original_grid(scene, tmp_path):
    values = np.zeros((20, 24, 28), np.uint8)  # (k, j, i)
    values[5:12, 6:14, 8:20] = 2
    values[7:10, 8:12, 10:16] = 3
    image = sitk.GetImageFromArray(values)
    image.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, -1))  # a negative determinant: Slicer flips the slice axis
    image.SetSpacing((1.0, 1.5, 2.0))
    sitk.WriteImage(image, str(tmp_path / "label.nii.gz"))
    sitk.WriteImage(sitk.Cast(image, sitk.sitkFloat32), str(tmp_path / "t1c.nii.gz"))
    logic = BrainTumorLabelLogic(scene)
    t1c = logic.loadVolume(tmp_path / "t1c.nii.gz", "t1c")
    segmentation = logic.segmentationFromLabel(tmp_path / "label.nii.gz", t1c, "tumor")
    logic.writeLabel(segmentation, t1c, tmp_path / "final.nii.gz")
    accepted = check_label(sitk.ReadImage(str(tmp_path / "final.nii.gz")), Grid.of(image), "case", "final")
    assert np.array_equal(sitk.GetArrayFromImage(accepted), values)


def test_segments_missing_from_the_label_are_added_empty_for_drawing(scene, study, tmp_path):
    logic = BrainTumorLabelLogic(scene)
    t1c = logic.loadSequences(_files(study), "case")["t1c"]
    edema_only = sitk.ReadImage(str(truth_path(study)))
    edema_only = sitk.Cast(sitk.BinaryThreshold(edema_only, 1, 3, 2, 0), sitk.sitkUInt8)
    sitk.WriteImage(edema_only, str(tmp_path / "edema.nii.gz"))
    segmentation = logic.segmentationFromLabel(tmp_path / "edema.nii.gz", t1c, "tumor")
    assert sorted(_segments(segmentation)) == ["ED", "ET", "NCR"]
    assert logic.volumesMl(segmentation, t1c)["ET"] == 0.0


def test_the_segmentation_saves_as_seg_nrrd_with_names_and_colours(scene, study, tmp_path):
    logic = BrainTumorLabelLogic(scene)
    t1c = logic.loadSequences(_files(study), "case")["t1c"]
    segmentation = logic.segmentationFromLabel(truth_path(study), t1c, "case tumor")
    path = logic.saveSegmentation(segmentation, tmp_path / "case.seg.nrrd")
    saved = slicerio.read_segmentation(str(path), skip_voxels=True)
    by_name = {s["name"]: s for s in saved["segments"]}
    assert sorted(by_name) == ["ED", "ET", "NCR"]
    assert by_name["ET"]["color"] == pytest.approx([250 / 255, 220 / 255, 30 / 255], abs=1e-3)


def test_volumes_are_assigned_from_the_scene_by_name(scene, study):
    logic = BrainTumorLabelLogic(scene)
    files = _files(study)
    names = {"t1n": "AX T1 PRE", "t1c": "AX T1 POST GD", "t2w": "AX T2 FSE", "t2f": "AX T2 FLAIR"}
    for sequence, name in names.items():
        logic.loadVolume(files[sequence], name)
    found, missing = logic.volumesFromScene("")
    assert {s: node.GetName() for s, node in found.items()} == names and missing == ()


def test_an_unreadable_label_file_is_refused_and_leaves_the_scene_as_it_was(scene, study, tmp_path):
    logic = BrainTumorLabelLogic(scene)
    t1c = logic.loadSequences(_files(study), "case")["t1c"]
    before = scene.GetNumberOfNodes()
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a volume")
    with pytest.raises(ValueError, match="broken.nii.gz"):
        logic.segmentationFromLabel(broken, t1c, "tumor")
    assert scene.GetNumberOfNodes() == before
    assert isinstance(t1c, slicer.vtkMRMLScalarVolumeNode)


def test_a_study_shown_beside_the_current_one_is_in_the_yellow_view_linked_to_the_red(scene, study):
    composites = add_views(scene)
    logic = BrainTumorLabelLogic(scene)
    current, other = logic.loadSequences(_files(study), "current"), logic.loadSequences(_files(study), "other")
    mine = logic.segmentationFromLabel(truth_path(study), current["t1c"], "current tumor")
    theirs = logic.segmentationFromLabel(truth_path(study), other["t1c"], "other tumor")
    assert logic.showBeside(current["t1c"], other["t1c"], theirs, mine)
    layout = scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
    assert layout.GetViewArrangement() == slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView
    assert composites["Red"].GetBackgroundVolumeID() == current["t1c"].GetID()
    assert composites["Yellow"].GetBackgroundVolumeID() == other["t1c"].GetID()
    assert all(composites[v].GetLinkedControl() for v in ("Red", "Yellow"))
    assert scene.GetNodeByID("vtkMRMLSliceNodeYellow").GetOrientation() == "Axial"  # as Red, not Sagittal
    shown = {name: node.GetDisplayNode().GetViewNodeIDs() for name, node in (("mine", mine), ("theirs", theirs))}
    assert shown["theirs"] == ("vtkMRMLSliceNodeYellow",)
    assert "vtkMRMLSliceNodeYellow" not in shown["mine"] and "vtkMRMLSliceNodeRed" in shown["mine"]


def test_without_red_and_yellow_views_nothing_is_shown_beside(scene, study):
    logic = BrainTumorLabelLogic(scene)
    other = logic.loadSequences(_files(study), "other")
    assert not logic.showBeside(None, other["t1c"])
    assert scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode") == 0
