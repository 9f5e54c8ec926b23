"""The synthetic data generator: determinism, label sanity, contrast, sites, writing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from lib.brats import ED, ET, NCR, SEQUENCES, label_filename, sequence_filename
from synthbrats import GeneratorConfig, generate_case, write_case
from synthbrats.case import draw_case_site
from synthbrats.cli import main as synthbrats_main
from synthbrats.contrast import draw_intensities, render
from synthbrats.tumor import EDEMA, ENHANCING, NECROSIS

FAST = GeneratorConfig(spacing=2.0, style="brats")


def arrays(case) -> dict[str, np.ndarray]:
    out = {s: sitk.GetArrayFromImage(case.images[s]) for s in SEQUENCES}
    out["seg"] = sitk.GetArrayFromImage(case.label)
    return out


@pytest.fixture(scope="module")
def glioblastoma():
    return generate_case(11, 0, dataclasses.replace(FAST, kind="glioblastoma"))


@pytest.fixture(scope="module")
def case_4_1():
    return generate_case(4, 1, FAST)


def test_same_seed_gives_identical_case(case_4_1) -> None:
    a, b = arrays(case_4_1), arrays(generate_case(4, 1, FAST))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_other_seed_or_index_gives_another_case(case_4_1) -> None:
    base = arrays(case_4_1)
    for other in (generate_case(5, 1, FAST), generate_case(4, 2, FAST)):
        assert not np.array_equal(base["seg"], arrays(other)["seg"])


def test_labels_are_brats_values_inside_the_brain(glioblastoma) -> None:
    a = arrays(glioblastoma)
    assert set(np.unique(a["seg"])) <= {0, NCR, ED, ET}
    assert {NCR, ED, ET} <= set(np.unique(a["seg"]))
    brain = a["t1c"] > 0
    assert (a["seg"][~brain] == 0).all()


def test_edema_envelops_the_tumor_core(glioblastoma) -> None:
    seg = arrays(glioblastoma)["seg"]
    core = np.isin(seg, (NCR, ET))
    brain = arrays(glioblastoma)["t1c"] > 0
    shell = ndimage.binary_dilation(core) & ~core & brain
    # the core's neighbours inside the brain are tumor (edema), not healthy tissue
    assert (seg[shell] == ED).mean() > 0.98


def test_enhancing_rim_surrounds_necrosis(glioblastoma) -> None:
    seg = arrays(glioblastoma)["seg"]
    necrosis = seg == NCR
    touching = ndimage.binary_dilation(necrosis) & ~necrosis
    # mostly closed: real rims have gaps where necrosis meets edema
    assert (seg[touching] == ET).mean() > 0.6


def test_low_grade_tumor_does_not_enhance() -> None:
    seg = arrays(generate_case(2, 0, dataclasses.replace(FAST, kind="low_grade")))["seg"]
    assert (seg == NCR).sum() > 0 and (seg == ET).sum() == 0


def test_realistic_contrast_orders_tissues_as_on_clinical_scans() -> None:
    # one pure block per tissue class, rendered without scanner effects
    shape = (8, 8, 8 * 7)
    tissues = {t: np.zeros(shape, np.float32) for t in ("wm", "gm", "csf")}
    comp = np.zeros(shape, np.uint8)
    blocks = {"wm": 0, "gm": 1, "csf": 2}
    for name, i in blocks.items():
        tissues[name][:, :, 8 * i: 8 * i + 8] = 1
    for code, i in ((NECROSIS, 3), (EDEMA, 4), (ENHANCING, 5)):
        tissues["wm"][:, :, 8 * i: 8 * i + 8] = 1
        comp[:, :, 8 * i: 8 * i + 8] = code
    zero = np.zeros(shape, np.float32)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        img = render(tissues, comp, zero, zero, draw_intensities(rng, randomised=False), rng, 1.0, 0.0)
        m = {s: [float(np.median(img[s][2:6, 2:6, 8 * i + 2: 8 * i + 6])) for i in range(6)] for s in SEQUENCES}
        wm, gm, csf, nec, ed, et = range(6)
        assert m["t1n"][wm] > m["t1n"][gm] > m["t1n"][csf]
        assert m["t2w"][csf] > m["t2w"][gm] > m["t2w"][wm] and m["t2w"][ed] > m["t2w"][wm]
        assert m["t2f"][csf] < m["t2f"][wm] < m["t2f"][ed]
        assert m["t1c"][et] > 1.1 * m["t1c"][wm] and m["t1c"][nec] < m["t1c"][wm]
        # as measured on real BraTS cases (sample-data/label_contrast.py): edema does not enhance
        # (darker than WM on T1c) and necrosis is FLAIR-bright, not suppressed like CSF
        assert m["t1c"][ed] < m["t1c"][wm] and m["t2f"][nec] > m["t2f"][wm]


def test_same_subject_at_two_sites_has_same_labels_other_intensities() -> None:
    site = draw_case_site(8, 0, FAST)
    other = dataclasses.replace(site, acquisitions={
        s: dataclasses.replace(a, wm_level=a.wm_level * 3.0, gamma=a.gamma * 1.3)
        for s, a in site.acquisitions.items()})
    first = generate_case(8, 0, FAST, site)
    a, b = arrays(first), arrays(generate_case(8, 0, FAST, other))
    np.testing.assert_array_equal(a["seg"], b["seg"])
    wm = sitk.GetArrayFromImage(first.white_matter) > 0
    assert np.median(b["t1n"][wm]) > 2.0 * np.median(a["t1n"][wm])


def test_raw_style_puts_sequences_on_their_own_grids() -> None:
    case = generate_case(3, 0, GeneratorConfig(spacing=2.0, style="raw"))
    grids = {s: (case.images[s].GetSize(), case.images[s].GetSpacing(), case.images[s].GetDirection())
             for s in SEQUENCES}
    assert len(set(grids.values())) > 1
    assert case.label.GetSize() == case.images["t1c"].GetSize()
    assert case.label.GetOrigin() == case.images["t1c"].GetOrigin()
    assert any(any(case.meta["site"]["acquisitions"][s]["motion_mm"]) for s in ("t1n", "t2w", "t2f"))


def test_write_case_uses_brats_naming_and_refuses_to_overwrite(tmp_path: Path) -> None:
    case = generate_case(1, 0, FAST)  # (the next test takes a sequence away from its own copy)
    folder = write_case(case, tmp_path)
    expected = {sequence_filename(case.case_id, s) for s in SEQUENCES}
    expected |= {label_filename(case.case_id), f"{case.case_id}-meta.json", f"{case.case_id}-study.json"}
    assert {p.name for p in folder.iterdir()} == expected
    before = (folder / label_filename(case.case_id)).read_bytes()
    with pytest.raises(FileExistsError):
        write_case(case, tmp_path)
    assert (folder / label_filename(case.case_id)).read_bytes() == before


def test_interrupted_write_leaves_nothing_behind(tmp_path: Path) -> None:
    case = generate_case(1, 0, FAST)
    del case.images["t2f"]  # the write fails after three sequences
    with pytest.raises(KeyError):
        write_case(case, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_command_generates_cases_and_keeps_existing_ones(tmp_path: Path) -> None:
    args = ["--cases", "2", "--seed", "9", "--out", str(tmp_path), "--spacing", "2", "--style", "brats"]
    assert synthbrats_main(args) == 0
    folders = sorted(p for p in tmp_path.iterdir())
    assert [p.name for p in folders] == ["SynBraTS-00009-000", "SynBraTS-00009-001"]
    stamp = (folders[0] / "SynBraTS-00009-000-t1c.nii.gz").stat().st_mtime_ns
    assert synthbrats_main(args) == 0
    assert (folders[0] / "SynBraTS-00009-000-t1c.nii.gz").stat().st_mtime_ns == stamp
