"""Brain mask (skull-stripped and fallback head mask) and crop."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lib.transforms import BrainMaskd, CropToMaskd, bounding_box, brain_mask, build_preprocessing, restore_label

from _volumes import sphere_case, write_case


def _ball(shape=(40, 40, 40), r=12.0, centre=None) -> np.ndarray:
    c = np.asarray(centre if centre is not None else [(s - 1) / 2 for s in shape])
    g = np.indices(shape).T - c
    return (np.sqrt((g ** 2).sum(-1)).T < r)


def test_skull_stripped_mask_is_nonzero_region_with_holes_filled() -> None:
    brain = _ball()
    img = np.zeros((4, 40, 40, 40), np.float32)
    img[:, brain] = 100.0
    img[:, 20, 20, 20] = 0.0  # a zero voxel inside the brain is a hole, not background
    m, stripped = brain_mask(img)
    assert stripped
    assert np.array_equal(m, brain)


def test_fallback_head_mask_for_non_stripped_data() -> None:
    rng = np.random.default_rng(0)
    head = _ball(r=15)
    img = np.abs(rng.normal(10, 4, (4, 40, 40, 40))).astype(np.float32)  # noisy, no exact zeros
    img[:, head] = 300 + rng.normal(0, 10, (4, int(head.sum())))
    img[:, 19:22, 19:22, 19:22] = 12.0  # dark spot inside (e.g. CSF): filled
    img[:, 2:4, 2:4, 2:4] = 400.0  # bright speck outside: not the largest component
    m, stripped = brain_mask(img)
    assert not stripped
    assert m[20, 20, 20] and not m[3, 3, 3]
    assert abs(int(m.sum()) - int(head.sum())) / head.sum() < 0.05


def test_bounding_box_with_margin_clipped() -> None:
    m = np.zeros((30, 30, 30), bool)
    m[5:10, 12:20, 25:30] = True
    start, stop = bounding_box(m, 3)
    assert start == (2, 9, 22) and stop == (13, 23, 30)


def test_crop_to_mask_crops_all_keys_and_records_box() -> None:
    from lib.transforms import CaseGeometry, Grid
    img = np.zeros((4, 40, 40, 40), np.float32)
    img[:, 10:20, 5:30, 12:18] = 1.0
    d = BrainMaskd()({"image": img, "label": np.ones((1, 40, 40, 40), np.uint8),
                      "geometry": CaseGeometry(Grid((40, 40, 40), (1.0,) * 3, (0.0,) * 3,
                                                    (1, 0, 0, 0, 1, 0, 0, 0, 1)))})
    d = CropToMaskd(margin=2)(d)
    assert d["image"].shape == (4, 14, 29, 10)
    assert d["label"].shape == d["brain_mask"].shape == (1, 14, 29, 10)
    assert d["geometry"].crop_start == (8, 3, 10) and d["geometry"].crop_stop == (22, 32, 20)


def test_pipeline_on_non_stripped_case_uses_head_mask_and_inverts(tmp_path: Path) -> None:
    imgs, lab = sphere_case(size=(40, 40, 34), spacing=(2.0, 2.0, 2.0), head=True)
    d = build_preprocessing(with_label=True)({"image": str(write_case(tmp_path / "h", "h", imgs, lab))})
    assert not d["skull_stripped"]
    assert d["brain_mask"][0][d["label"][0] > 0].all()  # tumour inside the (head) mask
    restored = restore_label(d["label"], d["geometry"])
    assert restored.GetSize() == lab.GetSize()
