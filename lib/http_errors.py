"""Typed errors -> HTTP responses with a message, for the MONAI Label server.

MONAI Label's endpoints call the app and the datastore directly and turn any other
exception into a bare 500. The server's boundary is therefore explicit: the app wraps its
own entry points in :func:`http_errors`, and hands MONAI Label an :class:`HttpDatastore`,
whose every method is the study datastore's with typed errors answered as 4xx/503. Inside
``lib/`` errors stay typed, so one method can call another and handle what it raises.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import HTTPException
from monailabel.interfaces.datastore import Datastore

from lib.datastore.base import StudyDatastore
from lib.errors import (
    ConflictError,
    ImageTooLargeError,
    InputError,
    ModelUnavailableError,
    PacsUnavailableError,
    UnknownIdError,
)

logger = logging.getLogger(__name__)

#: Error class -> HTTP status; the first match wins.
STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (UnknownIdError, 404),
    (ConflictError, 409),
    (ImageTooLargeError, 413),
    (InputError, 422),
    (PacsUnavailableError, 503),
    (ModelUnavailableError, 503),
)


def http_status(exc: BaseException) -> int | None:
    """The status for a typed error, or None for anything else (a server fault)."""
    return next((status for cls, status in STATUS if isinstance(exc, cls)), None)


@contextmanager
def http_errors() -> Iterator[None]:
    """Re-raise typed errors as ``HTTPException`` with their message."""
    try:
        yield
    except HTTPException:
        raise
    except Exception as exc:
        status = http_status(exc)
        if status is None:
            raise
        message = str(exc.args[0]) if isinstance(exc, LookupError) and exc.args else str(exc)
        logger.warning("%d: %s", status, message)
        raise HTTPException(status_code=status, detail=message) from exc


class HttpDatastore(Datastore):
    """What MONAI Label's endpoints see of a :class:`StudyDatastore`: each call is passed to
    ``store`` inside :func:`http_errors`. The app itself works with ``store``."""

    def __init__(self, store: StudyDatastore) -> None:
        self.store = store

    def name(self) -> str:
        return self.store.name()

    def set_name(self, name: str) -> None:
        self.store.set_name(name)

    def description(self) -> str:
        return self.store.description()

    def set_description(self, description: str) -> None:
        self.store.set_description(description)

    def datalist(self) -> list[dict[str, Any]]:
        with http_errors():
            return self.store.datalist()

    def get_labels_by_image_id(self, image_id: str) -> dict[str, str]:
        with http_errors():
            return self.store.get_labels_by_image_id(image_id)

    def get_label_by_image_id(self, image_id: str, tag: str) -> str:
        with http_errors():
            return self.store.get_label_by_image_id(image_id, tag)

    def get_image(self, image_id: str, params: dict[str, Any] | None = None) -> Any:
        with http_errors():
            return self.store.get_image(image_id, params)

    def get_image_uri(self, image_id: str) -> str:
        with http_errors():
            return self.store.get_image_uri(image_id)

    def get_label(self, label_id: str, label_tag: str, params: dict[str, Any] | None = None) -> Any:
        with http_errors():
            return self.store.get_label(label_id, label_tag, params)

    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        with http_errors():
            return self.store.get_label_uri(label_id, label_tag)

    def get_image_info(self, image_id: str) -> dict[str, Any]:
        with http_errors():
            return self.store.get_image_info(image_id)

    def get_label_info(self, label_id: str, label_tag: str) -> dict[str, Any]:
        with http_errors():
            return self.store.get_label_info(label_id, label_tag)

    def get_labeled_images(self, label_tag: str | None = None, labels: list[str] | None = None) -> list[str]:
        with http_errors():
            return self.store.get_labeled_images(label_tag, labels)

    def get_unlabeled_images(self, label_tag: str | None = None, labels: list[str] | None = None) -> list[str]:
        with http_errors():
            return self.store.get_unlabeled_images(label_tag, labels)

    def list_images(self) -> list[str]:
        with http_errors():
            return self.store.list_images()

    def get_dataset_archive(self, limit_cases: int | None) -> str:
        with http_errors():
            return self.store.get_dataset_archive(limit_cases)

    def refresh(self) -> None:
        with http_errors():
            self.store.refresh()

    def add_image(self, image_id: str, image_filename: str, image_info: dict[str, Any]) -> str:
        with http_errors():
            return self.store.add_image(image_id, image_filename, image_info)

    def remove_image(self, image_id: str) -> None:
        with http_errors():
            self.store.remove_image(image_id)

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]) -> str:
        with http_errors():
            return self.store.save_label(image_id, label_filename, label_tag, label_info)

    def remove_label(self, label_id: str, label_tag: str) -> None:
        with http_errors():
            self.store.remove_label(label_id, label_tag)

    def update_image_info(self, image_id: str, info: dict[str, Any]) -> None:
        with http_errors():
            self.store.update_image_info(image_id, info)

    def update_label_info(self, label_id: str, label_tag: str, info: dict[str, Any]) -> None:
        with http_errors():
            self.store.update_label_info(label_id, label_tag, info)

    def status(self) -> dict[str, Any]:
        with http_errors():
            return self.store.status()

    def json(self) -> dict[str, Any]:
        with http_errors():
            return self.store.json()
