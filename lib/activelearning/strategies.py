"""MONAI Label strategies for ``POST /activelearning/{strategy}`` that lease the study they pick.

Each strategy is a selection rule over the unlabelled studies that no other client holds; the
chosen study is leased to the request's ``client_id`` (:mod:`lib.activelearning.leases`). A
request without ``client_id`` still never gets a study leased to someone, but takes no lease.
"""

from __future__ import annotations

import random
from typing import Any

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.strategy import Strategy

from .leases import LeaseBook


class LeasedStrategy(Strategy):
    """Picks with :meth:`pick` among the free unlabelled studies and leases the pick."""

    def __init__(self, description: str, leases: LeaseBook) -> None:
        super().__init__(description)
        self.leases = leases

    def pick(self, candidates: list[str]) -> str | None:
        raise NotImplementedError

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict[str, Any] | None:
        candidates = sorted(datastore.get_unlabeled_images(request.get("label_tag"), request.get("labels")))
        client_id = str(request.get("client_id") or "")
        if client_id:
            lease = self.leases.take(client_id, candidates, self.pick)
            return None if lease is None else {"id": lease.image_id, "lease_expires_at": lease.expires_at}
        held = self.leases.held_by_others(None)
        chosen = self.pick([c for c in candidates if c not in held])
        return None if chosen is None else {"id": chosen}


class RandomStudy(LeasedStrategy):
    def __init__(self, leases: LeaseBook) -> None:
        super().__init__("A random unlabelled study no one else is working on", leases)

    def pick(self, candidates: list[str]) -> str | None:
        return random.choice(candidates) if candidates else None


class FirstStudy(LeasedStrategy):
    def __init__(self, leases: LeaseBook) -> None:
        super().__init__("The first unlabelled study (by id) no one else is working on", leases)

    def pick(self, candidates: list[str]) -> str | None:
        return min(candidates) if candidates else None
