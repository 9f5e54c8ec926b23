"""Generated cases exported as DICOM studies, and volumes rebuilt from the series."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from lib.dicom.volume import series_to_image
from lib.errors import InvalidGeometryError
from lib.transforms.geometry import reorient_to_ras
from synthbrats import GeneratorConfig, generate_case, write_case
from synthbrats.dicom_export import StudyPlan, export_case

SEQUENCES = ("t1n", "t1c", "t2w", "t2f")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    """A raw-style case (per-sequence grids, oblique, flips) and its DICOM study."""
    root = tmp_path_factory.mktemp("dicom")
    case = write_case(generate_case(6, 0, GeneratorConfig(spacing=2.0, style="raw")), root / "cases")
    plan = StudyPlan("ge", "Gadobutrol", ("localizer", "dwi"), None)
    export_case(case, root / "dicom", np.random.default_rng(0), plan)
    return case, root / "dicom" / case.name


def _series(study: Path, name: str) -> list[pydicom.Dataset]:
    folder = next(p for p in study.iterdir() if p.is_dir() and p.name.endswith(name))
    return [pydicom.dcmread(f) for f in sorted(folder.glob("*.dcm"))]


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_the_volume_built_from_dicom_equals_the_nifti_it_came_from(exported, sequence):
    case, study = exported
    rebuilt = reorient_to_ras(series_to_image(_series(study, sequence)))
    source = reorient_to_ras(sitk.ReadImage(str(next(case.glob(f"*-{sequence}.nii.gz"))), sitk.sitkFloat32))
    assert np.array_equal(sitk.GetArrayFromImage(rebuilt), sitk.GetArrayFromImage(source))
    assert np.allclose(rebuilt.GetOrigin(), source.GetOrigin(), atol=1e-3)
    assert np.allclose(rebuilt.GetSpacing(), source.GetSpacing(), atol=1e-3)
    assert np.allclose(rebuilt.GetDirection(), source.GetDirection(), atol=1e-6)


def test_slice_order_comes_from_positions_not_instance_numbers(exported):
    _, study = exported
    datasets = _series(study, "t2w")
    shuffled = datasets[::-1]
    assert np.array_equal(sitk.GetArrayFromImage(series_to_image(shuffled)),
                          sitk.GetArrayFromImage(series_to_image(datasets)))


def test_a_gap_in_the_slices_is_refused(exported):
    _, study = exported
    datasets = _series(study, "t1c")
    with pytest.raises(InvalidGeometryError, match="unevenly spaced"):
        series_to_image(datasets[:5] + datasets[6:])


def test_the_study_record_names_every_series_and_the_attributes_follow_the_site(exported):
    _, study = exported
    record = json.loads((study / "study.json").read_text())
    assert set(record["series"]) == {"localizer", *SEQUENCES, "dwi"}
    t1c = _series(study, "t1c")[0]
    assert (t1c.SeriesDescription, t1c.ContrastBolusAgent, t1c.StudyInstanceUID) == \
        ("AX T1 POST GD", "Gadobutrol", record["study_uid"])
    assert float(_series(study, "t2f")[0].InversionTime) > 1500


def test_exported_instances_pass_dciodvfy(exported):
    _, study = exported
    for folder in sorted(p for p in study.iterdir() if p.is_dir()):
        out = subprocess.run(["dciodvfy", str(next(folder.glob("*.dcm")))], capture_output=True, text=True)
        assert "Error" not in out.stdout + out.stderr, (folder.name, out.stderr)
