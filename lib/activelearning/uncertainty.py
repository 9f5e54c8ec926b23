"""How unsure the served model is about a study, from its region probabilities before thresholds.

Test-time flips, not Monte Carlo dropout: the network has one dropout layer (after its first
convolution), so dropout samples barely differ, while flips along the axes the training
augmented (left-right, anterior-posterior) are in-distribution views whose disagreement is
real. The case is predicted as-is and flipped along :data:`MIRROR_AXES` (the served prediction
settings otherwise); the flipped predictions are flipped back and averaged; per voxel and
region (WT, TC, ET) the binary entropy of that mean. A model with a voxel classifier is scored
on the classifier's probabilities (a fusion reads the network's flip-averaged ones).

The score is the mean of that entropy over a *region of interest*: voxels the mean predicts as
whole tumor, or with a whole-tumor probability of at least :data:`ROI_MIN_PROBABILITY`, grown by
:data:`ROI_MARGIN_MM`. A mean (not a sum) over the tumor and its margin, so that a large tumor
does not look uncertain by its size alone, and the rest of the brain (confident background)
does not dilute a small one. Also kept: the predicted whole-tumor volume (for the
foreground-aware random baseline) and the seconds it took.

Scores are cached per model version and study (:class:`ScoreBook`); :class:`BackgroundScorer`
fills in the missing ones in one thread, so a newly published model gets its scores while the
strategy falls back to random.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from lib.atomic import read_json, write_json
from lib.infers.pipeline import TumorSegmenter

logger = logging.getLogger(__name__)

#: Test-time flips besides the case as-is: left-right and anterior-posterior (working-grid axes).
MIRROR_AXES: tuple[int, ...] = (0, 1)
ROI_MIN_PROBABILITY = 0.1
ROI_MARGIN_MM = 6.0


@dataclass(frozen=True)
class StudyScore:
    """``uncertainty``: mean binary entropy (bits, 0-1) over the region of interest, averaged
    over WT, TC, ET; ``wt_ml``: the predicted whole-tumor volume; ``seconds``: scoring time."""

    uncertainty: float
    wt_ml: float
    seconds: float


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in bits of Bernoulli probabilities ``p`` (0 at 0 and 1, 1 at 0.5)."""
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return -(q * np.log2(q) + (1 - q) * np.log2(1 - q))


def score_regions(probabilities: np.ndarray, spacing_mm: float) -> tuple[float, float]:
    """(uncertainty, predicted WT mL) of flip-averaged region probabilities (3, X, Y, Z) on an
    isotropic grid of ``spacing_mm``. No region of interest: uncertainty 0."""
    wt = probabilities[0]
    roi = wt >= ROI_MIN_PROBABILITY
    if not roi.any():
        return 0.0, 0.0
    grow = max(1, int(round(ROI_MARGIN_MM / spacing_mm)))
    roi = ndimage.binary_dilation(roi, iterations=grow)
    entropy = binary_entropy(probabilities[:, roi])
    return float(entropy.mean()), float((wt >= 0.5).sum()) * spacing_mm ** 3 / 1000.0


def score_study(segmenter: TumorSegmenter, source: Any) -> tuple[str, StudyScore]:
    """(model version, score) of one study (a case folder, as :meth:`TumorSegmenter.segment`)."""
    started = time.perf_counter()
    model = segmenter.checkpoint()
    data = model.preprocessing()({"image": source})
    settings = replace(segmenter.settings, roi_size=model.roi_size, mirror_axes=MIRROR_AXES)
    probabilities = model.region_probabilities(data, settings)
    uncertainty, wt_ml = score_regions(probabilities, model.spacing_mm)
    return model.version, StudyScore(uncertainty, wt_ml, round(time.perf_counter() - started, 2))


class ScoreBook:
    """Scores per model version and study, in a JSON file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def scores(self, model_version: str) -> dict[str, StudyScore]:
        with self._lock:
            return {study: StudyScore(**s) for study, s in read_json(self.path).get(model_version, {}).items()}

    def put(self, model_version: str, study: str, score: StudyScore) -> None:
        with self._lock:
            stored = read_json(self.path)
            stored = {model_version: stored.get(model_version, {})}  # older versions' scores are stale
            stored[model_version][study] = asdict(score)
            write_json(self.path, stored)


class BackgroundScorer:
    """Scores the studies it is given for the served model, one at a time, in one daemon thread."""

    def __init__(self, segmenter: TumorSegmenter, book: ScoreBook, study_path: Callable[[str], Path]) -> None:
        self.segmenter, self.book, self.study_path = segmenter, book, study_path
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def fill(self, studies: Iterable[str]) -> None:
        """Start scoring ``studies`` that have no score for the served model (no-op while busy)."""
        with self._lock:
            if self.running:
                return
            self._thread = threading.Thread(target=self._run, args=(list(studies),), name="uncertainty-scorer",
                                            daemon=True)
            self._thread.start()

    def _run(self, studies: list[str]) -> None:
        for study in studies:
            version = self.segmenter.checkpoint().version
            if study in self.book.scores(version):
                continue
            try:
                scored_version, score = score_study(self.segmenter, self.study_path(study))
            except Exception as error:  # one unreadable study must not stop the others
                logger.warning("uncertainty of %s not computed: %s", study, error)
                continue
            self.book.put(scored_version, study, score)
            logger.info("uncertainty of %s under %s: %.4f (%.1f s)", study, scored_version, score.uncertainty,
                        score.seconds)
