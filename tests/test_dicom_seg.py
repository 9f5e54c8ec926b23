"""Labels as DICOM Segmentations: segments, codes, colours, provenance, round trip, dciodvfy."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from lib.dicom.seg import label_to_seg, seg_to_label
from lib.dicom.volume import series_to_image
from lib.errors import InvalidLabelError
from synthbrats import GeneratorConfig, generate_case, write_case
from synthbrats.dicom_export import StudyPlan, export_case


@pytest.fixture(scope="module")
def t1c_and_label(tmp_path_factory) -> tuple[list[pydicom.Dataset], np.ndarray]:
    """The t1c series of an exported oblique case, and its ground truth on the series' grid."""
    root = tmp_path_factory.mktemp("seg")
    case = write_case(generate_case(8, 0, GeneratorConfig(spacing=2.0, style="raw")), root / "cases")
    export_case(case, root / "dicom", np.random.default_rng(1), StudyPlan("philips", None, (), None))
    folder = next((root / "dicom" / case.name).glob("*-t1c"))
    datasets = [pydicom.dcmread(f) for f in sorted(folder.glob("*.dcm"))]
    grid = series_to_image(datasets)
    truth = sitk.ReadImage(str(next(case.glob("*-seg.nii.gz"))))
    label = sitk.GetArrayFromImage(sitk.Resample(truth, grid, sitk.Transform(), sitk.sitkNearestNeighbor))
    assert set(np.unique(label)) == {0, 1, 2, 3}
    return datasets, label


def _write(seg, tmp_path: Path) -> Path:
    path = tmp_path / "seg.dcm"
    seg.save_as(str(path))
    return path


def test_reading_the_seg_back_gives_the_label_voxel_for_voxel(t1c_and_label, tmp_path):
    datasets, label = t1c_and_label
    seg = label_to_seg(label, datasets, manual=False, algorithm="brats_segresnet", algorithm_version="1.0")
    back = seg_to_label(pydicom.dcmread(_write(seg, tmp_path)), datasets[::-1])
    assert np.array_equal(back, label)


def test_segments_keep_values_names_codes_and_colours(t1c_and_label):
    datasets, label = t1c_and_label
    seg = label_to_seg(label, datasets, manual=False, algorithm="brats_segresnet", algorithm_version="1.0")
    segments = {s.SegmentNumber: s for s in seg.SegmentSequence}
    assert [segments[n].SegmentLabel for n in (1, 2, 3)] == ["NCR", "ED", "ET"]
    assert segments[1].SegmentedPropertyTypeCodeSequence[0].CodeValue == "6574001"
    assert segments[2].SegmentedPropertyTypeCodeSequence[0].CodeValue == "79654002"
    assert all(s.SegmentedPropertyCategoryCodeSequence[0].CodingSchemeDesignator == "SCT" for s in segments.values())
    assert len({tuple(s.RecommendedDisplayCIELabValue) for s in segments.values()}) == 3
    assert all(s.SegmentAlgorithmType == "AUTOMATIC" for s in segments.values())
    assert segments[3].SegmentationAlgorithmIdentificationSequence[0].AlgorithmVersion == "1.0"
    referenced = seg.ReferencedSeriesSequence[0].SeriesInstanceUID
    assert referenced == datasets[0].SeriesInstanceUID and seg.StudyInstanceUID == datasets[0].StudyInstanceUID


def test_a_correction_is_manual(t1c_and_label):
    datasets, label = t1c_and_label
    seg = label_to_seg(label, datasets, manual=True, algorithm="brats_segresnet", algorithm_version="1.0",
                       creator="Doe^Jane")
    assert {s.SegmentAlgorithmType for s in seg.SegmentSequence} == {"MANUAL"}
    assert str(seg.ContentCreatorName) == "Doe^Jane"


@pytest.mark.parametrize("bad", ["values", "shape"])
def test_a_bad_label_is_refused(t1c_and_label, bad):
    datasets, label = t1c_and_label
    wrong = np.where(label == 3, 4, label) if bad == "values" else label[:-1]
    with pytest.raises(InvalidLabelError):
        label_to_seg(wrong, datasets, manual=True, algorithm="a", algorithm_version="1")


@pytest.mark.parametrize("manual", [False, True])
def test_every_seg_passes_dciodvfy_without_errors(t1c_and_label, tmp_path, manual):
    datasets, label = t1c_and_label
    seg = label_to_seg(label, datasets, manual=manual, algorithm="brats_segresnet", algorithm_version="1.0")
    result = subprocess.run(["dciodvfy", str(_write(seg, tmp_path))], capture_output=True, text=True)
    assert "Error" not in result.stdout + result.stderr, result.stderr
