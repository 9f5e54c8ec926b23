"""Whole-case segmentation: preprocessing -> model (network, and the voxel classifier when the
checkpoint has one) -> postprocessing -> label on the t1c grid.

The serving task (:mod:`lib.infers.task`) and the benchmark call :meth:`TumorSegmenter.segment`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from lib.errors import ModelUnavailableError
from lib.model import Checkpoint, PredictionSettings, load_checkpoint, select_device
from lib.postprocessing import label_volumes_ml
from lib.transforms import restore_label
from lib.transforms.quality import DROPOUT_NOTE_FRACTION

logger = logging.getLogger(__name__)


@dataclass
class SegmentationResult:
    """``label``: UInt8 image on the input's t1c grid (1 NCR, 2 ED, 3 ET); ``volumes_ml``:
    NCR, ED, ET, TC, WT in mL on that grid; ``seconds``: time per stage."""

    label: sitk.Image
    volumes_ml: dict[str, float]
    model_version: str
    device: str
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class TumorSegmenter:
    """Segments four-sequence cases with the first checkpoint found among ``checkpoints``
    (e.g. the latest trained model, then the bundled one). The checkpoint is loaded once
    and reloaded when its file changes, so a model published by training is used from the
    next request on, without a restart."""

    def __init__(self, checkpoints: Sequence[str | Path], settings: PredictionSettings | None = None) -> None:
        self.candidates = [Path(p) for p in checkpoints]
        self.settings = settings or PredictionSettings()
        self._loaded: tuple[Path, int] | None = None
        self._checkpoint: Checkpoint | None = None
        self._refused: dict[tuple[Path, int], str] = {}
        self._lock = threading.Lock()
        #: Why a preferred checkpoint is not the one served (None when it is).
        self.warning: str | None = None

    def checkpoint_path(self) -> Path:
        """The checkpoint served now: the first candidate that exists and loads."""
        checkpoint = self.checkpoint()
        assert checkpoint.path is not None
        return checkpoint.path

    def checkpoint(self) -> Checkpoint:
        """The first candidate that loads, (re)loaded when a newer file was published. A file
        that does not load (corrupt, half-copied by hand) is skipped with a warning, once per
        version of the file; :class:`ModelUnavailableError` when none loads."""
        with self._lock:
            problems = []
            for path in self.candidates:
                try:
                    stamp = (path, path.stat().st_mtime_ns)
                except FileNotFoundError:
                    continue
                if stamp in self._refused:
                    problems.append(self._refused[stamp])
                    continue
                if self._loaded != stamp or self._checkpoint is None:
                    try:
                        checkpoint = load_checkpoint(path)
                    except Exception as exc:  # any unreadable file: serve the next candidate
                        self._refused[stamp] = f"{path.name} could not be loaded ({type(exc).__name__}: {exc})"[:300]
                        logger.warning("%s; trying the next model", self._refused[stamp])
                        problems.append(self._refused[stamp])
                        continue
                    self._checkpoint, self._loaded = checkpoint, stamp
                    logger.info("loaded model %s from %s", checkpoint.version, path)
                self.warning = f"{'; '.join(problems)}; serving {path.name}" if problems else None
                assert self._checkpoint is not None
                return self._checkpoint
            raise ModelUnavailableError("no model checkpoint could be loaded (looked for "
                                        f"{', '.join(str(p) for p in self.candidates)})"
                                        + (f": {'; '.join(problems)}" if problems else ""))

    def segment(self, source: Any, case_id: str | None = None) -> SegmentationResult:
        """Segment one case. ``source``: case folder, 4-channel file, ``{seq: path}`` or a list
        of 4 paths (see :func:`lib.transforms.build_preprocessing`). Bad input raises the typed
        :class:`lib.errors.InputError` subclasses."""
        seconds: dict[str, float] = {}
        t0 = time.perf_counter()
        model = self.checkpoint()
        seconds["load_model"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        data = model.preprocessing()({"image": source, "case_id": case_id} if case_id else {"image": source})
        seconds["preprocess"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        settings = dataclasses.replace(self.settings, roi_size=model.roi_size)
        regions = model.region_probabilities(data, settings)
        seconds["infer"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        labels = model.labels(regions, data)
        label = restore_label(labels, data["geometry"], data.get("case_id"))
        volumes = label_volumes_ml(sitk.GetArrayViewFromImage(label), label.GetSpacing())
        seconds["postprocess"] = time.perf_counter() - t0

        notes = []
        if not data.get("skull_stripped", True):
            notes.append("input is not skull-stripped: the brain mask is a head mask")
        registration = data.get("registration") or {}
        moved = [s for s, r in registration.items() if r is not None]
        if moved:
            notes.append(f"co-registered to t1c: {', '.join(moved)}")
        brain_ml = float(np.count_nonzero(data["brain_mask"])) * model.spacing_mm ** 3 / 1000.0
        for sequence, share in (data.get("signal_dropout") or {}).items():
            if share > DROPOUT_NOTE_FRACTION:
                notes.append(f"{sequence} has almost no signal over {100 * share:.1f} % of the brain "
                             f"({share * brain_ml:.0f} mL): the segmentation there is unreliable; check that series")
        return SegmentationResult(label=label, volumes_ml=volumes, model_version=model.version,
                                  device=str(select_device(self.settings.device)),
                                  seconds={k: round(v, 3) for k, v in seconds.items()}, notes=notes)

