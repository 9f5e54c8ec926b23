"""Case search over the studies of a datastore: what the server's search routes and
``btl-search`` call.

:class:`SearchService` keeps the index (:mod:`lib.search.index`) in step with the datastore.
A study is (re)indexed when :meth:`SearchService.changed` is told of it (a segmentation, a
label saved or removed, a report signed, a study removed) and by :meth:`reconcile`, which
compares what is indexed with what the datastore holds (at start, when the served model
version changes, and for ``btl-search update``). The work runs on one background thread
(:meth:`start`), or in the caller's (:meth:`refresh`, :meth:`run_pending`).

A study is indexed from its newest ``final`` label, else its newest ``original`` (model output);
a study without a label is not searchable. Its image embedding is the served model's; the text
is its newest signed report's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lib.datastore.base import FINAL, ORIGINAL, StudyDatastore
from lib.errors import ConflictError, InputError, UnknownIdError
from lib.model import Checkpoint
from lib.report.store import ReportStore
from lib.transforms import find_case_files

from . import features as study_features
from .features import LabelRef, StudyFeatures
from .filters import Filter
from .index import Neighbour, SearchIndex
from .text import SentenceEncoder, report_text
from .thumbnails import write_thumbnail

logger = logging.getLogger(__name__)

#: Bounds of a search request (one place).
MAX_K = 100
MAX_QUERY_CHARS = 500
MAX_QUERY_TERMS = 32
#: Reciprocal-rank fusion constant of the hybrid text search.
RRF_K = 60
#: How often the background thread checks the served model version when idle (seconds).
MODEL_CHECK_S = 30.0
_TERM = re.compile(r"\w+", re.UNICODE)

By = Literal["image", "tumor", "both"]
Mode = Literal["keyword", "semantic", "hybrid"]
BY_CHOICES = ("image", "tumor", "both")
MODE_CHOICES = ("keyword", "semantic", "hybrid")


def patient_key(patient_id: str | None) -> str | None:
    """A pseudonym of a patient id (the same patient, the same key; not reversible)."""
    return None if not patient_id else hashlib.sha256(patient_id.encode()).hexdigest()[:16]


def query_terms(q: str) -> list[str]:
    """The words of a text query; :class:`InputError` for an empty or too long query."""
    if len(q) > MAX_QUERY_CHARS:
        raise InputError(f"the query has {len(q)} characters; at most {MAX_QUERY_CHARS}")
    terms = list(dict.fromkeys(t.lower() for t in _TERM.findall(q)))
    if not terms:
        raise InputError("the query has no words")
    if len(terms) > MAX_QUERY_TERMS:
        raise InputError(f"the query has {len(terms)} different words; at most {MAX_QUERY_TERMS}")
    return terms


def check_k(k: int) -> int:
    if not 1 <= k <= MAX_K:
        raise InputError(f"k must be between 1 and {MAX_K}, got {k}")
    return k


@dataclass
class _Queue:
    """Studies waiting to be indexed (each once), with a condition to wait on."""

    pending: dict[str, None] = field(default_factory=dict)
    busy: str | None = None
    condition: threading.Condition = field(default_factory=threading.Condition)


class SearchService:
    """See the module docstring. ``model`` gives the served checkpoint; ``folder`` is where the
    index and the thumbnails live (next to the datastore's state)."""

    def __init__(self, studies: StudyDatastore, reports: ReportStore, model: Callable[[], Checkpoint],
                 folder: str | Path, sentences: SentenceEncoder | None = None) -> None:
        self.studies, self.reports, self.model = studies, reports, model
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)  # the index and thumbnails name and show patients: the server's user only
        self.index = SearchIndex(self.folder / "index")
        self.sentences = sentences or SentenceEncoder()
        self.problems: dict[str, str] = {}
        self._queue = _Queue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ---- keeping the index in step
    def changed(self, study: str) -> None:
        """Queue a study whose labels, report or existence changed."""
        with self._queue.condition:
            self._queue.pending[study] = None
            self._queue.condition.notify_all()

    def served_model_version(self) -> str | None:
        try:
            return self.model().version
        except Exception:  # no model: tumor and text search go on
            return None

    def _follow_model(self) -> bool:
        """Serve the image embeddings of the served model version; True when it changed."""
        version = self.served_model_version()
        if version is None or version == self.index.image_model:
            return False
        logger.info("search: image embeddings of model %s from now on", version)
        self.index.serve_image_model(version)
        return True

    def reconcile(self) -> int:
        """Queue every study whose indexed label, model or report version is not the current
        one, and drop the indexed studies the datastore no longer has; returns how many were queued."""
        self._follow_model()
        indexed = self.index.versions()
        listed = set(self.studies.list_images())
        for gone in set(indexed) - listed:
            self.index.delete(gone)
        stale = [s for s in sorted(listed) if self._wanted(s) != indexed.get(s)]
        for study in stale:
            self.changed(study)
        return len(stale)

    def _label_of(self, study: str) -> LabelRef | None:
        tags = self.studies.label_tags(study)
        tag = FINAL if FINAL in tags else ORIGINAL if ORIGINAL in tags else None
        return None if tag is None else LabelRef(tag, self.studies.latest_label(study, tag).version)

    def _report_version(self, study: str) -> int | None:
        for version in reversed(self.reports.versions(study)):
            if self.reports.get(study, version).final:
                return version
        return None

    def _wanted(self, study: str) -> tuple[str, int, str | None, int | None] | None:
        try:
            label = self._label_of(study)
        except UnknownIdError:
            return None
        if label is None:
            return None
        return label.tag, label.version, self.index.image_model, self._report_version(study)

    def refresh(self, study: str) -> str:
        """Index one study now: "indexed", "updated text", "removed" (gone, or no label) or
        "unchanged"."""
        self._follow_model()
        try:
            label = self._label_of(study)
        except UnknownIdError:
            label = None
        if label is None:
            removed = self.index.delete(study)
            self.problems.pop(study, None)
            return "removed" if removed else "unchanged"
        report_version = self._report_version(study)
        model_version = self.served_model_version()
        old = self.index.features(study)
        outcome = "updated text"
        if old is None or old.label != label or (old.model_version != model_version and model_version is not None):
            features = self._compute(study, label)
            outcome = "indexed"
        else:
            features = old
            if self.index.report_version(study) == report_version:
                return "unchanged"
        report = None if report_version is None else report_text(self.reports.get(study, report_version))
        vectors = self.sentences.encode([s.text for s in report.sentences]) if report else None
        self.index.put(features.with_report(report, vectors))
        self.problems.pop(study, None)
        return outcome

    def _compute(self, study: str, label: LabelRef) -> StudyFeatures:
        checkpoint = self.model()
        case = self.studies.study_path(study)
        label_path = Path(self.studies.label_version_uri(study, label.tag, label.version))
        features = study_features.compute(checkpoint, self.studies.study_ref(study), case, label_path, label)
        self._write_thumbnail(study, case, label_path, label)
        return features

    def _thumbnail_path(self, study: str, label: LabelRef) -> Path:
        return self.folder / "thumbnails" / study / f"{label.tag}-v{label.version:04d}.png"

    def _write_thumbnail(self, study: str, case: Path, label_path: Path, label: LabelRef) -> Path:
        out = self._thumbnail_path(study, label)
        if not out.exists():
            write_thumbnail(find_case_files(case, study).path_of("t1c"), label_path, out)
        return out

    def run_pending(self) -> int:
        """Index every queued study in this thread; returns how many were processed."""
        done = 0
        while True:
            with self._queue.condition:
                if not self._queue.pending:
                    self._queue.busy = None
                    self._queue.condition.notify_all()
                    break
                study = next(iter(self._queue.pending))
                del self._queue.pending[study]
                self._queue.busy = study
            self._refresh_logged(study)
            done += 1
        self.index.save()
        return done

    def _refresh_logged(self, study: str) -> None:
        try:
            outcome = self.refresh(study)
            logger.info("search index: %s %s", study, outcome)
        except Exception as exc:  # one study that cannot be indexed must not stop the others
            self.problems[study] = f"{type(exc).__name__}: {exc}"[:300]
            logger.warning("search index: %s not indexed: %s", study, self.problems[study], exc_info=True)

    def start(self) -> threading.Thread:
        """Index in a background thread: reconcile, then whatever :meth:`changed` queues."""
        def work() -> None:
            try:
                self.reconcile()
            except Exception:
                logger.exception("search index: reconciling with the datastore failed")
            while not self._stopping.is_set():
                try:
                    self.run_pending()
                    with self._queue.condition:
                        if not self._queue.pending:
                            self._queue.condition.wait(MODEL_CHECK_S)
                    if self._follow_model():
                        self.reconcile()
                except Exception:  # the indexer must outlive any one failure (a full disk, a PACS down)
                    logger.exception("search index: indexing failed; trying again")
                    self._stopping.wait(MODEL_CHECK_S)
        self._thread = threading.Thread(target=work, name="search-index", daemon=True)
        self._thread.start()
        if self.index.count("text"):  # reports to search: load the sentence model now, not on the first query
            threading.Thread(target=self._warm_up, name="search-sentences", daemon=True).start()
        return self._thread

    def _warm_up(self) -> None:
        try:
            self.sentences.warm_up()
        except Exception:
            logger.exception("search: the sentence model did not load; semantic text search is unavailable")

    def stop(self) -> None:
        self._stopping.set()
        with self._queue.condition:
            self._queue.condition.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until nothing is queued or being indexed; False on timeout."""
        with self._queue.condition:
            return self._queue.condition.wait_for(lambda: not self._queue.pending and self._queue.busy is None,
                                                  timeout_s)

    def reindex(self) -> dict[str, int]:
        """Rebuild the whole index from the datastore (in this thread)."""
        self.index.clear()
        self.problems.clear()
        queued = self.reconcile()
        return {"queued": queued, "indexed": self.run_pending(), "problems": len(self.problems)}

    # ---- searching
    def _indexed_row(self, study: str) -> int:
        self.studies.get_image_info(study)  # an unknown study is a 404
        row = self.index.row_of(study)
        if row is None:
            with self._queue.condition:
                waiting = study in self._queue.pending or self._queue.busy == study
            why = self.problems.get(study)
            raise ConflictError(f"study '{study}' is not in the search index yet: "
                                + ("it is being indexed; try again in a minute" if waiting
                                   else f"it could not be indexed ({why})" if why
                                   else "it has no label; segment it first"))
        return row

    def similar(self, study: str, k: int = 10, by: str = "both", filters: list[Filter] | None = None,
                show_patient: bool = True) -> dict[str, Any]:
        """The ``k`` studies most like ``study``, by ``by`` (image, tumor or both), among those that
        pass ``filters``; the study itself excluded, studies of its patient flagged."""
        check_k(k)
        if by not in BY_CHOICES:
            raise InputError(f"by must be one of {', '.join(BY_CHOICES)}, not {by[:40]!r}")
        self._follow_model()
        row = self._indexed_row(study)
        allowed = self.index.matching(filters or [])
        spaces = ["image", "tumor"] if by == "both" else [by]
        queries = {space: self.index.vector(space, row) for space in spaces}
        if queries.get("image") is None and by in ("image", "both"):
            if by == "image":
                raise ConflictError(f"study '{study}' has no image embedding of the served model "
                                    f"{self.index.image_model} yet; try again once it is re-indexed, or search "
                                    "by tumor")
            spaces = ["tumor"]
        scores: dict[int, dict[str, float]] = {}
        for space in spaces:
            query = queries[space]
            assert query is not None
            for n in self.index.nearest(space, query, k * (2 if len(spaces) > 1 else 1), allowed, {row}):
                scores.setdefault(n.row, {})[space] = n.score
        if len(spaces) > 1:  # every candidate scored in both spaces
            for space in spaces:
                query = queries[space]
                assert query is not None
                missing = [r for r, s in scores.items() if space not in s]
                for r, score in self.index.similarities(space, query, missing).items():
                    scores[r][space] = score
        ranked = sorted(scores.items(), key=lambda item: -float(np.mean([item[1].get(s, 0.0) for s in spaces])))[:k]
        query_row = self.index.rows([row])[row]
        hits = [{"score": round(float(np.mean([s.get(space, 0.0) for space in spaces])), 4),
                 "scores": {space: round(v, 4) for space, v in s.items()}, "_row": r} for r, s in ranked]
        return {"study": study, "by": by, "spaces": spaces, "k": k,
                "model_version": self.index.image_model, "filters": [f.__dict__ for f in filters or []],
                "hits": self._hits(hits, query_row.get("patient_id"), show_patient)}

    def text(self, q: str, k: int = 10, mode: str = "hybrid", filters: list[Filter] | None = None,
             show_patient: bool = True) -> dict[str, Any]:
        """Signed reports matching ``q``: by words (FTS5, porter stemming), by meaning (sentence
        embeddings), or both fused by reciprocal rank; each hit with its best sentence."""
        check_k(k)
        if mode not in MODE_CHOICES:
            raise InputError(f"mode must be one of {', '.join(MODE_CHOICES)}, not {mode[:40]!r}")
        terms = query_terms(q)
        allowed = self.index.matching(filters or [])
        keyword = self.index.keyword(terms, 2 * k, allowed) if mode != "semantic" else []
        semantic = self.index.semantic(self.sentences.encode([q])[0], 2 * k, allowed) if mode != "keyword" else []
        fused: dict[int, float] = {}
        for rank, n in enumerate(keyword):
            fused[n.row] = fused.get(n.row, 0.0) + 1.0 / (RRF_K + rank + 1)
        best_semantic = {n.row: (n, sentence) for n, sentence in semantic}
        for rank, (n, _) in enumerate(semantic):
            fused[n.row] = fused.get(n.row, 0.0) + 1.0 / (RRF_K + rank + 1)
        scores = {n.row: n.score for n in keyword} if mode == "keyword" else \
            {n.row: n.score for n, _ in semantic} if mode == "semantic" else fused
        ranked = sorted(scores, key=lambda r: -scores[r])[:k]
        keyword_rows = {n.row for n in keyword}
        hits = []
        for r in ranked:
            match = self._match(r, terms, keyword_rows, best_semantic)
            hits.append({"score": round(scores[r], 4), "match": match, "_row": r})
        return {"q": q, "mode": mode, "k": k, "filters": [f.__dict__ for f in filters or []],
                "hits": self._hits(hits, None, show_patient)}

    def _match(self, row: int, terms: list[str], keyword_rows: set[int],
               semantic: dict[int, tuple[Neighbour, int]]) -> dict[str, Any] | None:
        if row in keyword_rows:
            found = self.index.best_sentence(row, terms)
            if found:
                return {"by": "keyword", "section": found[0], "sentence": found[1], "highlighted": found[2]}
        if row in semantic:
            neighbour, sentence_row = semantic[row]
            sentence = self.index.sentence(sentence_row)
            if sentence:
                return {"by": "semantic", "section": sentence[0], "sentence": sentence[1],
                        "highlighted": f"<mark>{sentence[1]}</mark>", "similarity": round(neighbour.score, 4)}
        return None

    def _hits(self, hits: list[dict[str, Any]], query_patient: str | None, show_patient: bool) -> list[dict[str, Any]]:
        rows = self.index.rows([h["_row"] for h in hits])
        out = []
        for hit in hits:
            row = rows.get(hit.pop("_row"))
            if row is None:
                continue
            d = json.loads(row["descriptors"])
            patient: dict[str, Any] = {"key": patient_key(row["patient_id"])}
            if show_patient:
                patient.update({"id": row["patient_id"], "name": row["patient_name"],
                                "accession_number": row["accession_number"]})
            out.append({
                "study": row["study"], "date": row["study_date"], "patient": patient,
                "same_patient": bool(query_patient) and row["patient_id"] == query_patient,
                **hit,
                "label": {"tag": row["label_tag"], "version": row["label_version"]},
                "model_version": row["model_version"],
                "measurements": {k: d[k] for k in ("volumes_ml", "percent_of_brain", "enhancing_fraction",
                                                   "necrotic_fraction", "lesion_count", "measurable_lesions",
                                                   "hemisphere", "crosses_midline")},
                "impression": row["impression"], "report_version": row["report_version"],
                "response": row["response"],
                "thumbnail": f"/btl/studies/{row['study']}/thumbnail",
            })
        return out

    def patients(self, q: str, show_patient: bool = True) -> dict[str, Any]:
        """A patient's studies by patient id, name or accession number (the datastore's own search:
        QIDO-RS on a PACS), grouped by patient, each study marked when it is searchable."""
        if len(q) > MAX_QUERY_CHARS:
            raise InputError(f"the query has {len(q)} characters; at most {MAX_QUERY_CHARS}")
        if not q.strip():
            raise InputError("give part of a patient id, a name or an accession number")
        indexed = self.index.versions()
        groups: dict[str, dict[str, Any]] = {}
        for ref in self.studies.find_studies(q):
            key = ref.patient_id or f"study:{ref.study}"
            group = groups.setdefault(key, {"patient": {"key": patient_key(ref.patient_id)}, "studies": []})
            if show_patient:
                group["patient"].update({"id": ref.patient_id, "name": ref.patient_name})
            group["studies"].append({"study": ref.study, "date": ref.study_date, "description": ref.description,
                                     "accession_number": ref.accession_number if show_patient else None,
                                     "indexed": ref.study in indexed,
                                     "thumbnail": f"/btl/studies/{ref.study}/thumbnail" if ref.study in indexed
                                     else None})
        return {"q": q, "patients": list(groups.values())}

    def thumbnail(self, study: str) -> Path:
        """The cached thumbnail of an indexed study (drawn now if it is missing)."""
        self._indexed_row(study)
        features = self.index.features(study)
        assert features is not None
        path = self._thumbnail_path(study, features.label)
        if path.exists():
            return path
        case = self.studies.study_path(study)
        label_path = Path(self.studies.label_version_uri(study, features.label.tag, features.label.version))
        return self._write_thumbnail(study, case, label_path, features.label)

    def status(self) -> dict[str, Any]:
        with self._queue.condition:
            pending = len(self._queue.pending) + (self._queue.busy is not None)
        return {"studies": self.index.count(), "image_vectors": self.index.count("image"),
                "image_model_version": self.index.image_model, "pending": pending,
                "problems": dict(self.problems), "recovered": self.index.recovered,
                "size_bytes": self.index.size_bytes()}
