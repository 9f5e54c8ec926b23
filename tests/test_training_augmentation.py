"""Tissue-level augmentation (lib/trainers/augment.py): what it may change and what it must not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.brats import ED, ET, NCR, SEQUENCES
from lib.trainers.augment import RandEnhancingDecoysd, RandNonEnhancingCored, RandSignalDropoutd, RandTissueShiftd
from lib.trainers.data import training_augmentation

T1C, T2W = SEQUENCES.index("t1c"), SEQUENCES.index("t2w")
SHAPE = (40, 40, 40)


def patch(seed: int = 0) -> dict[str, np.ndarray]:
    """A z-scored 4-channel patch: brain in a 32-voxel cube, edema block with a core inside."""
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((4, *SHAPE)).astype(np.float32)
    brain = np.zeros((1, *SHAPE), np.uint8)
    brain[0, 4:36, 4:36, 4:36] = 1
    image[:, brain[0] == 0] = 0
    label = np.zeros((1, *SHAPE), np.uint8)
    label[0, 8:20, 8:20, 8:20] = ED
    label[0, 11:17, 11:17, 11:17] = NCR
    return {"image": image, "label": label, "brain_mask": brain}


def test_tissue_shift_moves_t1c_inside_the_labels_only() -> None:
    data = patch()
    shift = RandTissueShiftd(prob=1.0, offsets_z=(-0.6, -0.4))
    shift.set_random_state(seed=1)
    out = shift(data)
    delta = np.asarray(out["image"]) - data["image"]
    core = data["label"][0] == NCR
    far = np.ones(SHAPE, bool)
    far[4:24, 4:24, 4:24] = False  # beyond the blurred border of the edema block
    assert -0.6 <= float(np.median(delta[T1C][core])) <= -0.4
    assert np.abs(delta[T1C][far]).max() < 1e-6
    assert np.abs(np.delete(delta, T1C, axis=0)).max() == 0  # other sequences untouched
    assert np.array_equal(out["label"], data["label"])


def test_decoys_brighten_t1c_in_normal_brain_and_leave_tumor_t2_and_label_alone() -> None:
    data = patch()
    decoys = RandEnhancingDecoysd(prob=1.0, max_decoys=3, sigma_vox=(2.0, 3.0))
    decoys.set_random_state(seed=2)
    out = decoys(data)
    delta = np.asarray(out["image"]) - data["image"]
    tumor = data["label"][0] > 0
    outside = data["brain_mask"][0] == 0
    assert delta[T1C].max() >= 0.6  # a decoy peaks at 0.6-1.6 z on T1c
    assert np.abs(delta[:, tumor]).max() == 0 and np.abs(delta[:, outside]).max() == 0
    assert np.abs(delta[T2W]).max() == 0
    assert np.array_equal(out["label"], data["label"])


def test_non_enhancing_core_takes_the_uptake_out_of_the_rim_and_relabels_it() -> None:
    data = patch()
    label = data["label"].copy()
    label[0, 10:18, 10:18, 10:18] = ET
    label[0, 12:16, 12:16, 12:16] = NCR
    data["label"] = label
    data["image"][T1C][label[0] == ET] += 3.0  # a bright rim around a dark centre
    ncr_level = float(np.median(data["image"][T1C][label[0] == NCR]))
    change = RandNonEnhancingCored(prob=1.0, offset_z=(0.0, 0.0), texture=0.0)
    out = change(data)
    rim = label[0] == ET
    assert not (np.asarray(out["label"]) == ET).any()
    assert np.array_equal(np.asarray(out["label"])[0] == NCR, (label[0] == NCR) | rim)
    assert np.allclose(np.asarray(out["image"])[T1C][rim], ncr_level, atol=1e-4)
    assert np.array_equal(np.delete(np.asarray(out["image"]), T1C, axis=0), np.delete(data["image"], T1C, axis=0))


def test_non_enhancing_core_leaves_a_patch_without_enhancement_alone() -> None:
    data = patch()
    out = RandNonEnhancingCored(prob=1.0)(data)
    assert np.array_equal(out["image"], data["image"]) and np.array_equal(out["label"], data["label"])


def test_augmentations_keep_a_meta_tensor_and_are_reproducible_by_seed() -> None:
    runs = []
    for _ in range(2):
        augment = training_augmentation((32, 32, 32), samples_per_case=2, non_enhancing_prob=0.0,
                                        signal_dropout_prob=0.0)
        augment.set_random_state(seed=7)
        runs.append(augment(patch()))
    for first, second in zip(*runs, strict=True):
        assert isinstance(first["image"], torch.Tensor) and first["image"].shape == (4, 32, 32, 32)
        assert torch.equal(torch.as_tensor(first["image"]), torch.as_tensor(second["image"]))


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="offsets_z"):
        RandTissueShiftd(offsets_z=(0.5, -0.5))
    with pytest.raises(ValueError, match="max_decoys"):
        RandEnhancingDecoysd(max_decoys=0)
    with pytest.raises(ValueError, match="texture"):
        RandNonEnhancingCored(texture=1.5)


def test_signal_dropout_blacks_one_sequence_over_a_slab_and_keeps_the_label() -> None:
    data = patch()
    dropout = RandSignalDropoutd(prob=1.0, thickness_vox=(6, 6))
    dropout.set_random_state(seed=3)
    out = dropout(data)
    changed = np.asarray(out["image"]) != data["image"]
    channels = [c for c in range(4) if changed[c].any()]
    assert len(channels) == 1  # one sequence only
    c = channels[0]
    brain = data["brain_mask"][0] > 0
    black = data["image"][c][brain].min()
    assert np.all(np.asarray(out["image"])[c][changed[c]] == black)
    # a 6-voxel slab at one face: the changed voxels lie within 6 of one face of the patch
    idx = np.argwhere(changed[c])
    spans = [(idx[:, a].min(), idx[:, a].max()) for a in range(3)]
    assert any(lo == 0 and hi <= 5 or lo >= SHAPE[a] - 6 and hi == SHAPE[a] - 1 for a, (lo, hi) in enumerate(spans))
    assert np.array_equal(out["label"], data["label"])


def test_signal_dropout_rejects_a_thickness_range_that_is_not_one() -> None:
    with pytest.raises(ValueError, match="thickness_vox"):
        RandSignalDropoutd(thickness_vox=(8, 4))
