"""MONAI Label strategies for ``POST /activelearning/{strategy}`` that lease the study they pick.

Each strategy is a selection rule over the unlabelled studies that no other client holds; the
chosen study is leased to the request's ``client_id`` (:mod:`lib.activelearning.leases`). A
request without ``client_id`` still never gets a study leased to someone, but takes no lease.

``uncertainty`` takes the free study the served model is least sure of, and ``foreground``
(the honest baseline for it) a random free study weighted by its predicted tumor volume; both
read the scores of :mod:`lib.activelearning.uncertainty`, start scoring what is missing in the
background, and pick at random among free studies while none is scored.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.strategy import Strategy

from .leases import LeaseBook
from .uncertainty import BackgroundScorer, ScoreBook, StudyScore


class LeasedStrategy(Strategy):
    """Picks with :meth:`pick` among the free unlabelled studies and leases the pick;
    ``DESCRIPTION`` is what ``/info/`` shows."""

    DESCRIPTION = ""

    def __init__(self, leases: LeaseBook) -> None:
        super().__init__(self.DESCRIPTION)
        self.leases = leases

    def prepare(self, unlabeled: list[str]) -> None:
        """Called with every unlabelled study before picking; nothing to do by default."""

    def pick(self, candidates: list[str]) -> str | None:
        raise NotImplementedError

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict[str, Any] | None:
        candidates = sorted(datastore.get_unlabeled_images(request.get("label_tag"), request.get("labels")))
        self.prepare(candidates)
        client_id = str(request.get("client_id") or "")
        if client_id:
            lease = self.leases.take(client_id, candidates, self.pick)
            return None if lease is None else {"id": lease.image_id, "lease_expires_at": lease.expires_at}
        held = self.leases.held_by_others(None)
        chosen = self.pick([c for c in candidates if c not in held])
        return None if chosen is None else {"id": chosen}


class RandomStudy(LeasedStrategy):
    DESCRIPTION = "A random unlabelled study no one else is working on"

    def pick(self, candidates: list[str]) -> str | None:
        return random.choice(candidates) if candidates else None


class FirstStudy(LeasedStrategy):
    DESCRIPTION = "The first unlabelled study (by id) no one else is working on"

    def pick(self, candidates: list[str]) -> str | None:
        return min(candidates) if candidates else None


class ScoredStrategy(LeasedStrategy):
    """A strategy over the served model's cached study scores; random while there are none."""

    def __init__(self, leases: LeaseBook, book: ScoreBook, scorer: BackgroundScorer,
                 model_version: Callable[[], str]) -> None:
        super().__init__(leases)
        self.book, self.scorer, self.model_version = book, scorer, model_version

    def prepare(self, unlabeled: list[str]) -> None:
        """Start scoring the unlabelled studies the served model has no score for."""
        scored = self.book.scores(self.model_version())
        missing = [study for study in unlabeled if study not in scored]
        if missing:
            self.scorer.fill(missing)

    def pick(self, candidates: list[str]) -> str | None:
        scores = self.book.scores(self.model_version())
        known = [c for c in candidates if c in scores]
        if not known:
            return random.choice(candidates) if candidates else None
        return self.choose({c: scores[c] for c in known})

    def choose(self, scores: dict[str, StudyScore]) -> str:
        raise NotImplementedError


class MostUncertainStudy(ScoredStrategy):
    DESCRIPTION = "The free study the model is least sure of (test-time flips)"

    def choose(self, scores: dict[str, StudyScore]) -> str:
        return max(sorted(scores), key=lambda study: scores[study].uncertainty)


class ForegroundRandomStudy(ScoredStrategy):
    DESCRIPTION = "A random free study, weighted by its predicted tumor volume"

    def choose(self, scores: dict[str, StudyScore]) -> str:
        studies = sorted(scores)
        weights = [max(scores[s].wt_ml, 0.1) for s in studies]  # a study with no predicted tumor still has a chance
        return random.choices(studies, weights=weights)[0]
