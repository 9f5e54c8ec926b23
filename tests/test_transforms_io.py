"""Loading a case, and every kind of bad input raising a typed error naming case and file."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from lib.brats import SEQUENCES
from lib.errors import (
    InputError,
    InvalidGeometryError,
    InvalidLabelError,
    MissingSequenceError,
    NonFiniteVoxelsError,
    RegistrationError,
    UnreadableImageError,
)
from lib.transforms import Grid, LoadCased, build_preprocessing, find_case_files
from lib.transforms.io import check_label

from _volumes import sphere_case, write, write_case

CASE = "BraTS-GLI-00001-000"


@pytest.fixture
def case_dir(tmp_path: Path) -> Path:
    imgs, lab = sphere_case(size=(24, 24, 20), spacing=(3.0, 3.0, 3.0))
    return write_case(tmp_path / CASE, CASE, imgs, lab)


def _assert_names(err: InputError, path: Path | str) -> None:
    assert err.case_id == CASE
    assert err.path is not None and Path(err.path).name == Path(path).name
    assert CASE in str(err) and Path(path).name in str(err)


def test_folder_case_loads_all_sequences_and_label(case_dir: Path) -> None:
    d = LoadCased()({"image": str(case_dir)})
    assert d["case_id"] == CASE
    for seq in SEQUENCES:
        assert d[seq].GetPixelID() == sitk.sitkFloat32 and d[seq].GetSize() == (24, 24, 20)
    assert d["label"].GetPixelID() == sitk.sitkUInt8
    assert d["geometry"].original.size == (24, 24, 20)


def test_other_simpleitk_extension_is_accepted(tmp_path: Path) -> None:
    imgs, lab = sphere_case(size=(16, 16, 12), spacing=(3.0, 3.0, 3.0))
    folder = write_case(tmp_path / CASE, CASE, imgs, lab, ext=".nrrd")
    files = find_case_files(folder)
    assert files.sequences is not None and files.sequences["t2f"].suffix == ".nrrd"
    assert files.label is not None and files.label.name == f"{CASE}-seg.nrrd"


def test_single_4d_file_splits_channels_in_order(tmp_path: Path) -> None:
    imgs, _ = sphere_case(size=(16, 16, 12), spacing=(3.0, 3.0, 3.0))
    vols = [sitk.GetArrayFromImage(imgs[s]) * (i + 1) for i, s in enumerate(SEQUENCES)]
    four = sitk.JoinSeries([sitk.GetImageFromArray(v) for v in vols])  # 4D, channel = last axis
    path = write(four, tmp_path / f"{CASE}.nii.gz")
    d = LoadCased()({"image": str(path)})
    assert d["case_id"] == CASE
    for i, s in enumerate(SEQUENCES):
        np.testing.assert_allclose(sitk.GetArrayFromImage(d[s]), vols[i], rtol=1e-6)


def test_missing_sequence(case_dir: Path) -> None:
    (case_dir / f"{CASE}-t2w.nii.gz").unlink()
    with pytest.raises(MissingSequenceError) as ei:
        LoadCased()({"image": str(case_dir)})
    assert ei.value.case_id == CASE and "t2w" in str(ei.value)


@pytest.mark.parametrize("damage", ["truncated", "random_bytes", "empty"])
def test_unreadable_file(case_dir: Path, damage: str) -> None:
    path = case_dir / f"{CASE}-t1n.nii.gz"
    raw = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "random_bytes":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    else:
        path.write_bytes(b"")
    with pytest.raises(UnreadableImageError) as ei:
        LoadCased()({"image": str(case_dir)})
    _assert_names(ei.value, path)


def test_truncated_uncompressed_nifti(tmp_path: Path) -> None:
    imgs, lab = sphere_case(size=(16, 16, 12), spacing=(3.0, 3.0, 3.0))
    folder = write_case(tmp_path / CASE, CASE, imgs, lab, ext=".nii")
    path = folder / f"{CASE}-t2f.nii"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(UnreadableImageError) as ei:
        LoadCased()({"image": str(folder)})
    _assert_names(ei.value, path)


def test_2d_image_rejected(case_dir: Path) -> None:
    path = case_dir / f"{CASE}-t1c.nii.gz"
    write(sitk.Image(24, 24, sitk.sitkFloat32) + 1, path)
    with pytest.raises(InvalidGeometryError) as ei:
        LoadCased()({"image": str(case_dir)})
    _assert_names(ei.value, path)
    assert "2D" in str(ei.value)


def test_4d_image_rejected_where_3d_expected(case_dir: Path) -> None:
    path = case_dir / f"{CASE}-t2w.nii.gz"
    vol = sitk.Image(24, 24, 20, sitk.sitkFloat32) + 1
    write(sitk.JoinSeries([vol, vol]), path)
    with pytest.raises(InvalidGeometryError) as ei:
        LoadCased()({"image": str(case_dir)})
    _assert_names(ei.value, path)
    assert "4D" in str(ei.value)


def test_single_file_with_wrong_channel_count_rejected(tmp_path: Path) -> None:
    vol = sitk.Image(16, 16, 12, sitk.sitkFloat32) + 1
    path = write(sitk.JoinSeries([vol, vol, vol]), tmp_path / f"{CASE}.nii.gz")
    with pytest.raises(InvalidGeometryError) as ei:
        LoadCased()({"image": str(path)})
    _assert_names(ei.value, path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_voxels(case_dir: Path, bad: float) -> None:
    """Written with nibabel: ITK itself turns NaN/Inf into 0 when reading NIfTI."""
    path = case_dir / f"{CASE}-t2f.nii.gz"
    img = nib.load(str(path))
    arr = np.asarray(img.dataobj, np.float32).copy()
    arr[12, 12, 10] = bad
    nib.save(nib.Nifti1Image(arr, img.affine, img.header), str(path))
    with pytest.raises(NonFiniteVoxelsError) as ei:
        LoadCased()({"image": str(case_dir)})
    _assert_names(ei.value, path)


def test_label_with_values_outside_0_3(case_dir: Path) -> None:
    path = case_dir / f"{CASE}-seg.nii.gz"
    lab = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(lab)
    arr[5, 5, 5] = 4
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(lab)
    write(out, path)
    with pytest.raises(InvalidLabelError) as ei:
        LoadCased()({"image": str(case_dir)})
    _assert_names(ei.value, path)
    assert "4" in str(ei.value)


def test_label_on_another_grid(case_dir: Path) -> None:
    path = case_dir / f"{CASE}-seg.nii.gz"
    lab = sitk.ReadImage(str(path))
    lab.SetOrigin((5.0, 0.0, 0.0))
    write(lab, path)
    with pytest.raises(InvalidLabelError) as ei:
        LoadCased()({"image": str(case_dir)})
    _assert_names(ei.value, path)
    assert "grid" in str(ei.value)


@pytest.mark.parametrize("flip", [(False, False, True), (True, False, False), (True, True, True)])
def test_a_label_on_the_same_voxels_in_another_order_is_put_back_exactly(flip) -> None:
    values = np.random.default_rng(1).integers(0, 4, (12, 16, 20)).astype(np.uint8)   # (z, y, x)
    reference = sitk.GetImageFromArray(values)
    reference.SetSpacing((1.0, 2.0, 3.0))
    reference.SetOrigin((10.0, -20.0, 30.0))
    reference.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, -1))  # a negative determinant, as some files have
    reordered = sitk.Flip(reference, flip)             # same voxels, axes reversed (as Slicer writes it)
    assert not Grid.of(reordered).matches(Grid.of(reference))
    restored = check_label(reordered, Grid.of(reference), CASE, "label.nii.gz")
    assert Grid.of(restored).matches(Grid.of(reference))
    assert np.array_equal(sitk.GetArrayFromImage(restored), values)


def test_a_label_half_a_voxel_off_is_not_the_same_grid() -> None:
    reference = sitk.Image([10, 10, 10], sitk.sitkUInt8)
    shifted = sitk.Image([10, 10, 10], sitk.sitkUInt8)
    shifted.SetOrigin((0.5, 0.0, 0.0))
    with pytest.raises(InvalidLabelError, match="differs from the t1c grid"):
        check_label(shifted, Grid.of(reference), CASE, "label.nii.gz")


def test_required_label_missing(case_dir: Path) -> None:
    (case_dir / f"{CASE}-seg.nii.gz").unlink()
    with pytest.raises(MissingSequenceError):
        LoadCased(label="required")({"image": str(case_dir)})


def test_non_overlapping_sequence_raises_registration_error(case_dir: Path) -> None:
    path = case_dir / f"{CASE}-t2w.nii.gz"
    img = sitk.ReadImage(str(path))
    img.SetOrigin((500.0, 0.0, 0.0))  # 50 cm away from t1c
    write(img, path)
    with pytest.raises(RegistrationError) as ei:
        build_preprocessing(with_label=False)({"image": str(case_dir)})
    _assert_names(ei.value, path)
    assert "overlap" in str(ei.value)

