"""Reorientation, multi-modal rigid co-registration, resampling and the inverse mapping."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lib.transforms import (
    RAS_DIRECTION,
    Grid,
    build_preprocessing,
    register_rigid,
    reorient_to_ras,
    resample_label,
    restore_label,
)

from _volumes import (
    grid_centered_on,
    label_volumes_ml,
    mni_contrasts,
    physical_centre,
    resample_onto,
    rotation_matrix,
    sphere_case,
    write_case,
)


def test_reorient_lps_to_ras_is_a_lossless_flip() -> None:
    img = sitk.GetImageFromArray(np.arange(4 * 5 * 6, dtype=np.float32).reshape(6, 5, 4))  # LPS identity
    out = reorient_to_ras(img)
    assert np.allclose(out.GetDirection(), RAS_DIRECTION)
    for idx in [(0, 0, 0), (3, 4, 5), (1, 2, 3)]:  # same physical point -> same value
        p = img.TransformIndexToPhysicalPoint(idx)
        assert out[out.TransformPhysicalPointToIndex(p)] == img[idx]


def test_coregistration_recovers_known_rigid_offset() -> None:
    """Fixed: MNI T1 (brain). Moving: T2-like contrast on its own grid, rotated (4, -3, 5) deg
    and shifted (6, -4, 5) mm. The estimate must undo it within 1 mm and 1 degree."""
    c = mni_contrasts()
    centre = physical_centre(c["t1"])
    truth = sitk.Euler3DTransform()
    truth.SetCenter(centre.tolist())
    truth.SetMatrix(rotation_matrix((4.0, -3.0, 5.0)).ravel().tolist())
    truth.SetTranslation((6.0, -4.0, 5.0))
    moving_grid = grid_centered_on(centre + np.array([4.0, -6.0, 3.0]), (80, 96, 76), (2.2, 2.2, 2.4))
    moving = resample_onto(c["t2"], moving_grid, truth)  # moving(x) = t2(truth(x))
    res = register_rigid(c["t1"], moving, "mni", "moving.nii.gz")
    # res.transform maps fixed -> moving; truth maps moving -> fixed: the composition is identity
    mask = sitk.GetArrayFromImage(c["mask"]).transpose(2, 1, 0) > 0
    idx = np.argwhere(mask)[:: 97]
    errs = []
    for i in idx:
        p = np.asarray(c["t1"].TransformIndexToPhysicalPoint([int(v) for v in i]))
        errs.append(np.linalg.norm(np.asarray(truth.TransformPoint(res.transform.TransformPoint(p.tolist()))) - p))
    assert max(errs) < 1.0, max(errs)
    r = np.asarray(res.transform.GetMatrix()).reshape(3, 3) @ np.asarray(truth.GetMatrix()).reshape(3, 3)
    angle = math.degrees(math.acos(min(1.0, (np.trace(r) - 1) / 2)))
    assert angle < 1.0, angle


def test_coregistered_grids_skip_registration(tmp_path: Path) -> None:
    imgs, lab = sphere_case(size=(24, 24, 20), spacing=(3.0, 3.0, 3.0))
    d = build_preprocessing(with_label=True)({"image": str(write_case(tmp_path / "c", "c", imgs, lab))})
    assert all(r is None for r in d["registration"].values())
    assert d["geometry"].registered == {"t1n": False, "t2w": False, "t2f": False}


def test_pipeline_output_layout(tmp_path: Path) -> None:
    imgs, lab = sphere_case(size=(24, 24, 20), spacing=(3.0, 3.0, 3.0))
    d = build_preprocessing(with_label=True)({"image": str(write_case(tmp_path / "c", "c", imgs, lab))})
    assert d["image"].dtype == np.float32 and d["image"].shape[0] == 4
    assert d["label"].dtype == np.uint8 and d["label"].shape == (1, *d["image"].shape[1:])
    assert d["brain_mask"].shape == d["label"].shape
    g = d["geometry"]
    assert g.ras_grid.spacing == (1.0, 1.0, 1.0) and np.allclose(g.ras_grid.direction, RAS_DIRECTION)
    assert tuple(b - a for a, b in zip(g.crop_start, g.crop_stop, strict=True)) == d["image"].shape[1:]
    assert d["case_id"] == "c"


def test_registered_sequence_lands_on_t1c(tmp_path: Path) -> None:
    """A t2w on a shifted, rotated grid with its content moved ends up aligned in the output."""
    c = mni_contrasts()
    centre = physical_centre(c["t1"])
    truth = sitk.Euler3DTransform()
    truth.SetCenter(centre.tolist())
    truth.SetMatrix(rotation_matrix((0.0, 5.0, -3.0)).ravel().tolist())
    truth.SetTranslation((-5.0, 3.0, 4.0))
    mgrid = grid_centered_on(centre + 5.0, (90, 100, 84), (2.0, 2.0, 2.0))
    imgs = {"t1c": c["t1"], "t1n": c["t1"] * 0.8, "t2f": c["t2"] * 0.5 + c["t1"] * 0.5,
            "t2w": resample_onto(c["t2"], mgrid, truth)}
    d = build_preprocessing(with_label=False, normalize=False)({"image": str(write_case(tmp_path / "m", "m", imgs))})
    assert d["geometry"].registered["t2w"] and not d["geometry"].registered["t1n"]
    ref = d["image"][1] > 0
    t2 = d["image"][2] > 0
    dice = 2 * (ref & t2).sum() / (ref.sum() + t2.sum())
    assert dice > 0.95, dice  # masks of 2 mm data, interpolated: boundary voxels differ


def _oblique_lps_case() -> tuple[dict[str, sitk.Image], sitk.Image]:
    direction = rotation_matrix((12.0, -8.0, 20.0))  # oblique, LPS-based
    return sphere_case(size=(96, 96, 26), spacing=(0.9, 0.9, 3.0), origin=(30.0, -20.0, 10.0),
                       direction=direction)


def test_label_round_trip_preserves_volumes_and_grid(tmp_path: Path) -> None:
    imgs, lab = _oblique_lps_case()
    folder = write_case(tmp_path / "rt", "rt", imgs, lab)
    d = build_preprocessing(with_label=True)({"image": str(folder)})
    restored = restore_label(d["label"], d["geometry"])
    original = sitk.ReadImage(str(folder / "rt-seg.nii.gz"))
    assert Grid.of(restored) == Grid.of(original)  # exactly the input grid
    assert restored.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(sitk.GetArrayViewFromImage(restored)).tolist()) <= {0, 1, 2, 3}
    v0, v1 = label_volumes_ml(original), label_volumes_ml(restored)
    for cls in (1, 2, 3):
        assert abs(v1[cls] - v0[cls]) / v0[cls] < 0.01, (cls, v0[cls], v1[cls])
    # the preprocessed (1 mm) label keeps the volumes too
    vox = {cls: float((d["label"] == cls).sum()) / 1000 for cls in (1, 2, 3)}
    for cls in (1, 2, 3):
        assert abs(vox[cls] - v0[cls]) / v0[cls] < 0.02, (cls, v0[cls], vox[cls])


def test_restore_label_from_lps_identity_grid_is_exact(tmp_path: Path) -> None:
    """1 mm LPS input: preprocessing only flips axes, so the round trip is voxel-exact."""
    imgs, lab = sphere_case(size=(60, 60, 50), spacing=(1.0, 1.0, 1.0))
    folder = write_case(tmp_path / "ex", "ex", imgs, lab)
    d = build_preprocessing(with_label=True)({"image": str(folder)})
    restored = restore_label(d["label"], d["geometry"])
    assert np.array_equal(sitk.GetArrayFromImage(restored), sitk.GetArrayFromImage(lab))


def _resample_label_everywhere(label: sitk.Image, grid: Grid, transform: sitk.Transform) -> np.ndarray:
    """The definition of :func:`resample_label`, evaluated on every voxel of ``grid``."""
    weights = [sitk.GetArrayFromImage(sitk.Resample(sitk.Cast(label == c, sitk.sitkFloat32), grid.reference_image(),
                                                    transform, sitk.sitkLinear, float(c == 0), sitk.sitkFloat32))
               for c in range(4)]
    return np.argmax(np.stack(weights), axis=0).astype(np.uint8)


def test_label_resampling_only_where_the_foreground_reaches_matches_resampling_everywhere() -> None:
    rng = np.random.default_rng(3)
    arr = np.zeros((30, 40, 36), np.uint8)  # (z, y, x): a lesion with three labels, off centre
    arr[8:16, 20:31, 5:17] = 2
    arr[10:14, 23:28, 8:14] = 1
    arr[12:14, 22:26, 7:10] = 3
    arr[rng.random(arr.shape) < 0.001] = 3  # scattered voxels widen the box
    label = sitk.GetImageFromArray(arr)
    label.SetSpacing((2.0, 2.0, 2.0))
    label.SetOrigin((-30.0, -40.0, -20.0))
    oblique = Grid((90, 100, 60), (0.9, 0.85, 1.3), (-35.0, -45.0, -25.0),
                   tuple(sitk.VersorTransform((0.0, 0.0, 1.0), 0.2).GetMatrix()))
    rigid = sitk.Euler3DTransform((0.0, 0.0, 0.0), 0.05, -0.1, 0.15, (3.0, -2.0, 4.0))
    for transform in (sitk.Transform(3, sitk.sitkIdentity), rigid):
        fast = sitk.GetArrayFromImage(resample_label(label, oblique, transform))
        assert np.count_nonzero(fast) > 1000
        assert np.array_equal(fast, _resample_label_everywhere(label, oblique, transform))
    empty = sitk.Image(label.GetSize(), sitk.sitkUInt8)
    assert not sitk.GetArrayFromImage(resample_label(empty, oblique)).any()
