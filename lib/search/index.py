"""The search index: one SQLite file and three USearch files in one folder.

    <folder>/index.sqlite    studies (who, when, label and model versions, measurements, the
                             vectors), report sentences, and two FTS5 tables (porter stemming):
                             one row per report (ranking) and one per sentence (highlighting)
    <folder>/image.usearch   HNSW over the image embeddings of the served model version (cosine)
    <folder>/tumor.usearch   HNSW over the tumor vectors (Euclidean)
    <folder>/text.usearch    HNSW over the report sentences' embeddings (cosine)

SQLite holds everything; the USearch files are derived from it. They are loaded when their
saved count and generation match SQLite's, and rebuilt from it otherwise (missing, corrupt,
older). A SQLite file that cannot be opened or lacks the schema is set aside as
``index.sqlite.corrupt-<time>`` and started again empty (:attr:`SearchIndex.recovered` says
so): the search service then refills it from the studies.

Keys: a study's vector key is its SQLite rowid; a sentence's is its rowid in ``sentences``.
One lock serialises every operation of one process; another process writing the same folder
(``btl-search reindex`` while a server runs) bumps the generation, and this process rebuilds
its in-memory indexes on its next operation.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from usearch.index import Index

from lib.datastore.base import StudyRef

from .descriptors import TumorDescriptors, tumor_vector, tumor_vector_length
from .features import LabelRef, StudyFeatures
from .filters import Filter, where_clause
from .text import SENTENCE_DIM

logger = logging.getLogger(__name__)

SCHEMA_VERSION = "1"
SQLITE_NAME = "index.sqlite"
#: Spaces with a vector index; ``image`` holds one model version's embeddings only.
SPACES = ("image", "tumor", "text")
#: Below this many candidates a filtered search scores every candidate exactly.
EXACT_BELOW = 4096
#: How many more neighbours than asked an HNSW search takes before dropping excluded ones.
OVERSAMPLE = 4

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS studies (
    id INTEGER PRIMARY KEY, study TEXT NOT NULL UNIQUE,
    patient_id TEXT, patient_name TEXT, accession_number TEXT, study_date TEXT, description TEXT,
    label_tag TEXT NOT NULL, label_version INTEGER NOT NULL, model_version TEXT,
    wt_ml REAL, tc_ml REAL, et_ml REAL, ncr_ml REAL, ed_ml REAL, wt_percent REAL,
    enhancing_fraction REAL, necrotic_fraction REAL, lesions INTEGER, measurable_lesions INTEGER,
    hemisphere TEXT, crosses_midline INTEGER,
    report_version INTEGER, impression TEXT, response TEXT, signed_at TEXT,
    descriptors TEXT NOT NULL, image BLOB, tumor BLOB NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS studies_patient ON studies(patient_id);
-- every filterable column: a filter is answered from this narrow index, not by reading the rows
-- with their vectors (at 100,000 studies: 10 ms instead of 480 ms)
CREATE INDEX IF NOT EXISTS studies_filters ON studies(hemisphere, crosses_midline, wt_ml, tc_ml, et_ml, ncr_ml,
    ed_ml, wt_percent, enhancing_fraction, necrotic_fraction, lesions, measurable_lesions, response);
CREATE TABLE IF NOT EXISTS sentences (
    id INTEGER PRIMARY KEY, study_id INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
    section TEXT NOT NULL, text TEXT NOT NULL, vector BLOB);
CREATE INDEX IF NOT EXISTS sentences_study ON sentences(study_id);
CREATE VIRTUAL TABLE IF NOT EXISTS report_fts USING fts5(text, tokenize='porter unicode61');
CREATE VIRTUAL TABLE IF NOT EXISTS sentence_fts USING fts5(text, tokenize='porter unicode61');
INSERT OR IGNORE INTO meta VALUES ('schema', '{SCHEMA_VERSION}'), ('generation', '0');
"""


@dataclass(frozen=True)
class Neighbour:
    """One result of a vector search: the study's row id and its similarity (higher is closer)."""

    row: int
    score: float


class IndexCorrupt(Exception):
    """The SQLite file is not a usable index."""


def _blob(vector: np.ndarray | None) -> bytes | None:
    return None if vector is None else np.asarray(vector, np.float32).tobytes()


def _vector(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, np.float32)


def _stored(index: Index, keys: np.ndarray) -> np.ndarray:
    """The vectors of ``keys`` (all present) as a (len(keys), ndim) array."""
    found: Any = index.get(keys)
    return np.stack([np.asarray(v, np.float32) for v in found]) if isinstance(found, tuple) \
        else np.asarray(found, np.float32).reshape(len(keys), -1)


def _new_index(space: str, ndim: int) -> Index:
    return Index(ndim=ndim, metric="l2sq" if space == "tumor" else "cos", dtype="f32")


def tumor_similarity(squared_distance: np.ndarray) -> np.ndarray:
    """Similarity in (0, 1] of two tumor vectors from their squared Euclidean distance."""
    return 1.0 / (1.0 + np.sqrt(np.maximum(squared_distance, 0.0)))


class SearchIndex:
    """See the module docstring. ``image_model`` is the model version whose image embeddings
    the image index serves (embeddings of other versions stay in SQLite, unsearched, until
    they are recomputed)."""

    def __init__(self, folder: str | Path, image_model: str | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.image_model = image_model
        self.recovered: str | None = None
        self._lock = threading.RLock()
        self._db = self._open()
        self._vectors: dict[str, Index] = {}
        self._generation = -1
        self._dirty = False
        self._load_vectors()

    # ---- opening, recovery
    @property
    def path(self) -> Path:
        return self.folder / SQLITE_NAME

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(_SCHEMA)
        schema = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if schema is None or schema[0] != SCHEMA_VERSION:
            raise IndexCorrupt(f"schema {schema and schema[0]!r}, expected {SCHEMA_VERSION}")
        db.execute("SELECT count(*) FROM studies").fetchone()
        return db

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except (sqlite3.DatabaseError, IndexCorrupt) as exc:
            aside = self.path.with_name(f"{SQLITE_NAME}.corrupt-{int(time.time())}")
            logger.error("search index %s unusable (%s); set aside as %s and started again", self.path, exc,
                         aside.name)
            for suffix in ("", "-wal", "-shm"):
                part = Path(f"{self.path}{suffix}")
                if part.exists():
                    part.replace(Path(f"{aside}{suffix}"))
            for space in SPACES:
                (self.folder / f"{space}.usearch").unlink(missing_ok=True)
            self.recovered = f"the index file was unusable ({type(exc).__name__}) and was started again"
            return self._connect()

    def close(self) -> None:
        with self._lock:
            self.save()
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
            self._db.execute("COMMIT")
            self._generation = self._stored_generation()
            self._dirty = True

    def _stored_generation(self) -> int:
        return int(self._db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # ---- vector indexes
    def _vector_rows(self, space: str) -> Iterator[tuple[int, np.ndarray]]:
        if space == "text":
            query = "SELECT id, vector FROM sentences WHERE vector IS NOT NULL"
            rows = self._db.execute(query)
        elif space == "image":
            rows = self._db.execute("SELECT id, image FROM studies WHERE image IS NOT NULL AND model_version IS ?",
                                    (self.image_model,))
        else:
            rows = self._db.execute("SELECT id, tumor FROM studies")
        for key, blob in rows:
            yield int(key), np.frombuffer(blob, np.float32)

    def _ndim(self, space: str) -> int:
        if space == "text":
            return SENTENCE_DIM
        if space == "tumor":
            return tumor_vector_length()
        row = self._db.execute("SELECT length(image) FROM studies WHERE image IS NOT NULL AND model_version IS ? "
                               "LIMIT 1", (self.image_model,)).fetchone()
        return int(row[0]) // 4 if row else 0

    def _stamp(self, space: str) -> str:
        model = self.image_model if space == "image" else ""
        return f"{self._stored_generation()}|{model}"

    def _load_vectors(self) -> None:
        """Load each saved USearch file whose stamp matches SQLite; rebuild the others."""
        with self._lock:
            for space in SPACES:
                path = self.folder / f"{space}.usearch"
                index = None
                if path.exists() and self._meta(f"saved:{space}") == self._stamp(space):
                    try:
                        index = Index.restore(str(path))
                    except (ValueError, RuntimeError, OSError) as exc:
                        logger.warning("search index file %s unreadable (%s); rebuilt", path.name, exc)
                self._vectors[space] = index if index is not None else self._build(space)
            self._generation = self._stored_generation()
            self._dirty = False

    def _build(self, space: str) -> Index:
        ndim = self._ndim(space)
        index = _new_index(space, max(ndim, 1))
        rows = list(self._vector_rows(space))
        if rows and ndim:
            keys = np.array([k for k, _ in rows], np.uint64)
            index.add(keys, np.stack([v for _, v in rows]))
        return index

    def _fresh(self) -> None:
        """Rebuild the in-memory indexes when another process changed the file."""
        if self._stored_generation() != self._generation:
            logger.info("search index changed by another process; reloading")
            for space in SPACES:
                self._vectors[space] = self._build(space)
            self._generation = self._stored_generation()
            self._dirty = True

    def save(self) -> None:
        """Write the USearch files (each atomically) and their stamps, when anything changed."""
        with self._lock:
            if not self._dirty:
                return
            for space, index in self._vectors.items():
                path = self.folder / f"{space}.usearch"
                tmp = path.with_name(f".{path.name}.tmp")
                index.save(str(tmp))
                tmp.replace(path)
                self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"saved:{space}", self._stamp(space)))
            self._dirty = False

    def serve_image_model(self, model_version: str | None) -> None:
        """Serve the image embeddings of ``model_version`` from now on (rebuilt from SQLite)."""
        with self._lock:
            if model_version != self.image_model:
                self.image_model = model_version
                self._vectors["image"] = self._build("image")
                self._dirty = True

    # ---- writing
    def put(self, features: StudyFeatures) -> None:
        """Insert or replace a study's features (and its report's sentences)."""
        d, ref, report = features.descriptors, features.ref, features.report
        tumor = tumor_vector(d)
        columns = {
            "study": ref.study, "patient_id": ref.patient_id, "patient_name": ref.patient_name,
            "accession_number": ref.accession_number, "study_date": ref.study_date, "description": ref.description,
            "label_tag": features.label.tag, "label_version": features.label.version,
            "model_version": features.model_version,
            "wt_ml": d.volumes_ml["WT"], "tc_ml": d.volumes_ml["TC"], "et_ml": d.volumes_ml["ET"],
            "ncr_ml": d.volumes_ml["NCR"], "ed_ml": d.volumes_ml["ED"], "wt_percent": d.percent_of_brain.get("WT"),
            "enhancing_fraction": d.enhancing_fraction, "necrotic_fraction": d.necrotic_fraction,
            "lesions": d.lesion_count, "measurable_lesions": d.measurable_lesions, "hemisphere": d.hemisphere,
            "crosses_midline": None if d.crosses_midline is None else int(d.crosses_midline),
            "report_version": report.version if report else None, "impression": report.impression if report else None,
            "response": report.response if report else None, "signed_at": report.signed_at if report else None,
            "descriptors": json.dumps(d.to_dict()), "image": _blob(features.image), "tumor": _blob(tumor),
            "updated": time.time(),
        }
        with self._transaction() as db:
            self._fresh_locked()
            old = db.execute("SELECT id FROM studies WHERE study=?", (ref.study,)).fetchone()
            if old is not None:
                self._delete_row(db, int(old[0]))
            names = ", ".join(columns)
            cursor = db.execute(f"INSERT INTO studies ({names}) VALUES ({', '.join('?' * len(columns))})",
                                list(columns.values()))
            row = int(cursor.lastrowid or 0)
            self._add(row, features, tumor)

    def _fresh_locked(self) -> None:
        # inside a write transaction: the generation read is this transaction's
        if self._stored_generation() != self._generation:
            for space in SPACES:
                self._vectors[space] = self._build(space)

    def _add(self, row: int, features: StudyFeatures, tumor: np.ndarray) -> None:
        db = self._db
        self._vectors["tumor"].add(row, tumor)
        image = features.image
        if image is not None and features.model_version == self.image_model:
            if self._vectors["image"].ndim != len(image):
                self._vectors["image"] = _new_index("image", len(image))
            self._vectors["image"].add(row, image)
        report, vectors = features.report, features.sentence_vectors
        if report is None:
            return
        db.execute("INSERT INTO report_fts (rowid, text) VALUES (?, ?)",
                   (row, " ".join(s.text for s in report.sentences)))
        for i, sentence in enumerate(report.sentences):
            vector = None if vectors is None else vectors[i]
            cursor = db.execute("INSERT INTO sentences (study_id, section, text, vector) VALUES (?, ?, ?, ?)",
                                (row, sentence.section, sentence.text, _blob(vector)))
            sentence_row = int(cursor.lastrowid or 0)
            db.execute("INSERT INTO sentence_fts (rowid, text) VALUES (?, ?)", (sentence_row, sentence.text))
            if vector is not None:
                self._vectors["text"].add(sentence_row, vector)

    def _delete_row(self, db: sqlite3.Connection, row: int) -> None:
        for (sentence_row,) in db.execute("SELECT id FROM sentences WHERE study_id=?", (row,)).fetchall():
            db.execute("DELETE FROM sentence_fts WHERE rowid=?", (sentence_row,))
            if self._vectors["text"].contains(int(sentence_row)):
                self._vectors["text"].remove(int(sentence_row))
        db.execute("DELETE FROM sentences WHERE study_id=?", (row,))
        db.execute("DELETE FROM report_fts WHERE rowid=?", (row,))
        db.execute("DELETE FROM studies WHERE id=?", (row,))
        for space in ("image", "tumor"):
            if self._vectors[space].contains(row):
                self._vectors[space].remove(row)

    def delete(self, study: str) -> bool:
        """Remove a study; True when it was there."""
        with self._transaction() as db:
            self._fresh_locked()
            old = db.execute("SELECT id FROM studies WHERE study=?", (study,)).fetchone()
            if old is None:
                return False
            self._delete_row(db, int(old[0]))
            return True

    def clear(self) -> None:
        """Remove every study."""
        with self._transaction() as db:
            for table in ("sentence_fts", "report_fts", "sentences", "studies"):
                db.execute(f"DELETE FROM {table}")
            for space in SPACES:
                self._vectors[space] = _new_index(space, max(self._ndim(space), 1))

    def bulk_put_vectors(self, rows: Iterable[dict[str, Any]]) -> None:
        """Insert prepared rows of ``studies`` columns (the benchmark's generated studies), in one
        transaction; the vector indexes are rebuilt after."""
        with self._transaction() as db:
            for columns in rows:
                names = ", ".join(columns)
                db.execute(f"INSERT INTO studies ({names}) VALUES ({', '.join('?' * len(columns))})",
                           list(columns.values()))
        with self._lock:
            for space in SPACES:
                self._vectors[space] = self._build(space)

    # ---- reading
    def versions(self) -> dict[str, tuple[str, int, str | None, int | None]]:
        """Study -> (label tag, label version, model version, report version) of what is indexed."""
        with self._lock:
            rows = self._db.execute("SELECT study, label_tag, label_version, model_version, report_version "
                                    "FROM studies").fetchall()
        return {r[0]: (r[1], int(r[2]), r[3], r[4]) for r in rows}

    def report_version(self, study: str) -> int | None:
        """The version of the signed report indexed for a study (None: none, or not indexed)."""
        with self._lock:
            found = self._db.execute("SELECT report_version FROM studies WHERE study=?", (study,)).fetchone()
        return None if found is None or found[0] is None else int(found[0])

    def row_of(self, study: str) -> int | None:
        with self._lock:
            found = self._db.execute("SELECT id FROM studies WHERE study=?", (study,)).fetchone()
        return None if found is None else int(found[0])

    def features(self, study: str) -> StudyFeatures | None:
        """What is indexed of one study (without its report's sentence vectors), or None."""
        with self._lock:
            self._db.row_factory = sqlite3.Row
            try:
                row = self._db.execute("SELECT * FROM studies WHERE study=?", (study,)).fetchone()
            finally:
                self._db.row_factory = None
        if row is None:
            return None
        ref = StudyRef(row["study"], row["patient_id"], row["patient_name"], row["accession_number"],
                       row["study_date"], row["description"])
        return StudyFeatures(ref, LabelRef(row["label_tag"], int(row["label_version"])), row["model_version"],
                             TumorDescriptors.from_dict(json.loads(row["descriptors"])), _vector(row["image"]))

    def rows(self, rows: list[int]) -> dict[int, dict[str, Any]]:
        """The ``studies`` columns (without vectors) of some row ids."""
        if not rows:
            return {}
        with self._lock:
            self._db.row_factory = sqlite3.Row
            try:
                found = self._db.execute(
                    "SELECT id, study, patient_id, patient_name, accession_number, study_date, description, label_tag, "
                    "label_version, model_version, descriptors, report_version, impression, response, signed_at "
                    f"FROM studies WHERE id IN ({', '.join('?' * len(rows))})", rows).fetchall()
            finally:
                self._db.row_factory = None
        return {int(r["id"]): dict(r) for r in found}

    def count(self, space: str | None = None) -> int:
        with self._lock:
            if space is None:
                return int(self._db.execute("SELECT count(*) FROM studies").fetchone()[0])
            self._fresh()
            return len(self._vectors[space])

    def matching(self, filters: list[Filter]) -> set[int] | None:
        """Row ids that pass ``filters`` (None without filters: every row)."""
        if not filters:
            return None
        clause, values = where_clause(filters)
        with self._lock:
            return {int(r[0]) for r in self._db.execute(f"SELECT id FROM studies WHERE {clause}", values)}

    def nearest(self, space: str, query: np.ndarray, k: int, allowed: set[int] | None,
                exclude: set[int]) -> list[Neighbour]:
        """The ``k`` most similar rows of ``space`` (image or tumor) to ``query`` among ``allowed``
        (None: all), never those of ``exclude``; exact when few are allowed."""
        with self._lock:
            self._fresh()
            index = self._vectors[space]
            if len(index) == 0 or index.ndim != len(query):
                return []
            if allowed is not None and len(allowed) <= EXACT_BELOW:
                keys = np.array(sorted(k for k in allowed - exclude if index.contains(k)), np.uint64)
                if not len(keys):
                    return []
                stored = _stored(index, keys)
                return self._scored(space, keys, stored, query, k)
            count = min(len(index), (k + len(exclude)) * OVERSAMPLE)
            while True:
                matches = index.search(query, count)
                found = [Neighbour(int(key), self._similarity(space, float(d)))
                         for key, d in zip(matches.keys, matches.distances, strict=True)
                         if int(key) not in exclude and (allowed is None or int(key) in allowed)]
                if len(found) >= k or count >= len(index):
                    return found[:k]
                count = min(len(index), count * 4)

    def similarities(self, space: str, query: np.ndarray, rows: list[int]) -> dict[int, float]:
        """Exact similarity of ``query`` to each of ``rows`` that ``space`` holds."""
        with self._lock:
            index = self._vectors[space]
            keys = np.array([r for r in rows if index.contains(r)], np.uint64)
            if not len(keys) or index.ndim != len(query):
                return {}
            scored = self._scored(space, keys, _stored(index, keys), query, len(keys))
        return {n.row: n.score for n in scored}

    @staticmethod
    def _similarity(space: str, distance: float) -> float:
        return float(tumor_similarity(np.array(distance))) if space == "tumor" else 1.0 - distance

    @staticmethod
    def _scored(space: str, keys: np.ndarray, stored: np.ndarray, query: np.ndarray, k: int) -> list[Neighbour]:
        if space == "tumor":
            scores = tumor_similarity(((stored - query) ** 2).sum(axis=1))
        else:
            norms = np.linalg.norm(stored, axis=1) * max(float(np.linalg.norm(query)), 1e-12)
            scores = stored @ query / np.maximum(norms, 1e-12)
        order = np.argsort(-scores)[:k]
        return [Neighbour(int(keys[i]), float(scores[i])) for i in order]

    def vector(self, space: str, row: int) -> np.ndarray | None:
        with self._lock:
            index = self._vectors[space]
            return np.asarray(index.get(row), np.float32) if index.contains(row) else None

    # ---- text
    def keyword(self, terms: list[str], k: int, allowed: set[int] | None) -> list[Neighbour]:
        """Reports holding every term (porter-stemmed), best BM25 first; when fewer than ``k``
        hold all, those holding any follow."""
        if not terms:
            return []
        quoted = ['"' + t.replace('"', '""') + '"' for t in terms]
        found: list[Neighbour] = []
        seen: set[int] = set()
        with self._lock:
            limit = "" if allowed is not None else f" LIMIT {int(2 * k)}"  # filtered: every match is a candidate
            for query in (" AND ".join(quoted), " OR ".join(quoted)):
                rows = self._db.execute("SELECT rowid, bm25(report_fts) FROM report_fts WHERE report_fts MATCH ? "
                                        "ORDER BY rank" + limit, (query,)).fetchall()
                for row, rank in rows:
                    if int(row) in seen or (allowed is not None and int(row) not in allowed):
                        continue
                    seen.add(int(row))
                    found.append(Neighbour(int(row), -float(rank)))
                    if len(found) >= k:
                        return found
        return found

    def best_sentence(self, row: int, terms: list[str]) -> tuple[str, str, str] | None:
        """(section, sentence, sentence with the terms in <mark>) of a report: the sentence
        holding the most terms."""
        quoted = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        with self._lock:
            rows = self._db.execute(
                "SELECT s.section, s.text, highlight(sentence_fts, 0, '<mark>', '</mark>') FROM sentence_fts "
                "JOIN sentences s ON s.id = sentence_fts.rowid WHERE sentence_fts MATCH ? AND s.study_id = ?",
                (quoted, row)).fetchall()
        if not rows:
            return None
        best = max(rows, key=lambda r: (r[2].count("<mark>"), -len(r[1])))
        return str(best[0]), str(best[1]), str(best[2])

    def semantic(self, query: np.ndarray, k: int, allowed: set[int] | None) -> list[tuple[Neighbour, int]]:
        """(report row and its best sentence's similarity, that sentence's row), best first."""
        with self._lock:
            self._fresh()
            index = self._vectors["text"]
            if len(index) == 0:
                return []
            count = min(len(index), k * 8)
            while True:
                matches = index.search(query, count)
                sentence_rows = [int(x) for x in matches.keys]
                owners = dict(self._db.execute(
                    f"SELECT id, study_id FROM sentences WHERE id IN ({', '.join('?' * len(sentence_rows))})",
                    sentence_rows).fetchall()) if sentence_rows else {}
                best: dict[int, tuple[Neighbour, int]] = {}
                for key, distance in zip(sentence_rows, matches.distances, strict=True):
                    study_row = owners.get(key)
                    if study_row is None or study_row in best or (allowed is not None and study_row not in allowed):
                        continue
                    best[int(study_row)] = (Neighbour(int(study_row), 1.0 - float(distance)), key)
                if len(best) >= k or count >= len(index):
                    return sorted(best.values(), key=lambda item: -item[0].score)[:k]
                count = min(len(index), count * 4)

    def sentence(self, sentence_row: int) -> tuple[str, str] | None:
        with self._lock:
            found = self._db.execute("SELECT section, text FROM sentences WHERE id=?", (sentence_row,)).fetchone()
        return None if found is None else (str(found[0]), str(found[1]))

    def size_bytes(self) -> int:
        """Bytes on disk: the SQLite file (with its write-ahead log) and the USearch files."""
        parts = [self.path, Path(f"{self.path}-wal")] + [self.folder / f"{s}.usearch" for s in SPACES]
        return sum(p.stat().st_size for p in parts if p.exists())
