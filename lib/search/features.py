"""The features of one study, as the index stores them, and how they are computed.

:class:`StudyFeatures` holds, for one study: who and when (:class:`lib.datastore.base.StudyRef`),
which label version they were computed from and which model version made the image embedding,
the tumor descriptors (:mod:`lib.search.descriptors`), the image embedding
(:mod:`lib.search.embedding`) and the text of its newest signed report (:mod:`lib.search.text`).

:func:`compute` runs the served model's own preprocessing on the study with the label (so the
label lands on the working grid the network sees), measures the label on the study's t1c grid
with the report's measurement, and runs the network's encoder once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from lib.datastore.base import StudyRef
from lib.model import Checkpoint
from lib.report.build import brain_of
from lib.report.measure import measure
from lib.transforms import find_case_files

from .descriptors import TumorDescriptors, describe, occupancy_map
from .embedding import embed, encoder_of
from .text import ReportText


@dataclass(frozen=True)
class LabelRef:
    """The label version features were computed from."""

    tag: str
    version: int

    def to_dict(self) -> dict[str, Any]:
        return {"tag": self.tag, "version": self.version}


@dataclass(frozen=True)
class StudyFeatures:
    """See the module docstring. ``image`` is None when no embedding could be made (a network
    without an encoder here); ``report`` None without a signed report; ``sentence_vectors``
    one row per sentence of ``report``."""

    ref: StudyRef
    label: LabelRef
    model_version: str | None
    descriptors: TumorDescriptors
    image: np.ndarray | None = field(default=None, compare=False)
    report: ReportText | None = None
    sentence_vectors: np.ndarray | None = field(default=None, compare=False)

    @property
    def study(self) -> str:
        return self.ref.study

    def with_report(self, report: ReportText | None, vectors: np.ndarray | None) -> StudyFeatures:
        return replace(self, report=report, sentence_vectors=vectors)


def compute(checkpoint: Checkpoint, ref: StudyRef, case: Path, label_path: Path, label: LabelRef) -> StudyFeatures:
    """The image and tumor features of a study's case (folder or 4-channel file) and one of its
    label versions (a NIfTI on its t1c grid)."""
    data = checkpoint.preprocessing(with_label=True)({"image": str(case), "label": str(label_path),
                                                       "case_id": ref.study})
    labels = np.asarray(data["label"])[0]
    brain = np.asarray(data["brain_mask"])[0]
    t1c = sitk.ReadImage(str(find_case_files(case, ref.study).path_of("t1c")), sitk.sitkFloat32)
    measured = measure(sitk.ReadImage(str(label_path), sitk.sitkUInt8), brain_of(t1c))
    descriptors = describe(measured, occupancy_map(labels, brain))
    try:
        encoder = encoder_of(checkpoint.network)
    except Exception:  # a network this module has no encoder for: tumor and text search still work
        return StudyFeatures(ref, label, None, descriptors)
    vector = embed(encoder, np.asarray(data["image"]), labels, brain, checkpoint.spacing_mm,
                   checkpoint.spec.size_divisor)
    return StudyFeatures(ref, label, checkpoint.version, descriptors, vector)
