"""A DICOMweb client for the PACS with credentials from the environment, timeouts, and
retries with exponential backoff. Failures become :class:`PacsUnavailableError` (or
:class:`UnknownIdError` for a 404), with messages that never contain the credentials.

Credentials: a file holding ``username:password`` (server config ``pacs_credentials_file``;
keep it readable by the server's user only), else ``BTL_PACS_USERNAME`` / ``BTL_PACS_PASSWORD``,
else MONAI Label's ``MONAI_LABEL_DICOMWEB_USERNAME`` / ``MONAI_LABEL_DICOMWEB_PASSWORD``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from lib.errors import PacsRefusedError, PacsUnavailableError, UnknownIdError

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: QIDO-RS results asked for per request.
PAGE_SIZE = 100


@dataclass(frozen=True)
class PacsConfig:
    """Where the PACS is and how patiently to talk to it. The password is not in ``repr``."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_s: float = 30.0
    retries: int = 3
    backoff_s: float = 0.5

    def __post_init__(self) -> None:
        # credentials written into the URL (http://user:pass@host/...) move out of it, so that
        # the URL can appear in messages, descriptions and cache names
        parts = urlsplit(self.url)
        if parts.username is not None or parts.password is not None:
            host = parts.hostname or ""
            netloc = f"[{host}]" if ":" in host else host
            netloc += f":{parts.port}" if parts.port else ""
            object.__setattr__(self, "url", urlunsplit(parts._replace(netloc=netloc)))
            object.__setattr__(self, "username", self.username or parts.username)
            object.__setattr__(self, "password", self.password or parts.password)

    @classmethod
    def from_environment(cls, url: str, credentials_file: str | None = None, **overrides: Any) -> PacsConfig:
        """Credentials from ``credentials_file`` (``username:password``) or the environment."""
        if credentials_file:
            try:
                username, _, password = Path(credentials_file).read_text(encoding="utf-8").strip().partition(":")
            except OSError as exc:
                raise PacsUnavailableError(f"cannot read the PACS credentials file ({exc.strerror})") from None
            return cls(url=url.rstrip("/"), username=username or None, password=password or None, **overrides)
        env = os.environ
        return cls(url=url.rstrip("/"),
                   username=env.get("BTL_PACS_USERNAME") or env.get("MONAI_LABEL_DICOMWEB_USERNAME") or None,
                   password=env.get("BTL_PACS_PASSWORD") or env.get("MONAI_LABEL_DICOMWEB_PASSWORD") or None,
                   **overrides)


class _TimeoutSession(requests.Session):
    """A session that applies a default timeout to every request (requests has none)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout_s)
        return super().request(*args, **kwargs)


class PacsClient:
    """The DICOMweb operations the datastore needs, each with retries and typed failures."""

    def __init__(self, config: PacsConfig) -> None:
        self.config = config
        session = _TimeoutSession(config.timeout_s)
        if config.username:
            session.auth = (config.username, config.password or "")
        retry = Retry(total=config.retries, connect=config.retries, read=config.retries,
                      backoff_factor=config.backoff_s, status_forcelist=(502, 503, 504),
                      allowed_methods=None, raise_on_status=False)
        session.mount("http://", HTTPAdapter(max_retries=retry))
        session.mount("https://", HTTPAdapter(max_retries=retry))
        self.session = session
        self.dicomweb = DICOMwebClient(url=config.url, session=session)
        # one retry policy (the session's, above), not a second one stacked on it
        self.dicomweb.set_http_retry_params(retry=False)

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status == 404:
                raise UnknownIdError(f"the PACS has no such object ({what})") from None
            if status in (401, 403):
                raise PacsUnavailableError(f"the PACS at {self.config.url} refused the credentials ({what})") from None
            if status is not None and 400 <= status < 500 and status not in (408, 429):
                raise PacsRefusedError(f"the PACS at {self.config.url} refused the request: {status} ({what})") \
                    from None
            raise PacsUnavailableError(f"the PACS at {self.config.url} answered {status} ({what})") from None
        except requests.RequestException as exc:  # connection, timeout, retries exhausted, broken stream
            raise PacsUnavailableError(f"the PACS at {self.config.url} is not reachable ({what}): "
                                       f"{type(exc).__name__}") from None

    def studies(self, search_filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """QIDO-RS studies, all pages."""
        return self._pages("searching studies", self.dicomweb.search_for_studies, search_filters=search_filters)

    def studies_matching(self, keys: dict[str, str]) -> list[dict[str, Any]]:
        """QIDO-RS studies whose attributes match ``keys`` with DICOM wildcards (``*``, ``?``),
        all pages. The query string is written here with the wildcards as they are: a PACS such
        as Orthanc 1.10 reads a percent-encoded ``%2A`` (what dicomweb-client sends) as a literal
        character, not a wildcard."""
        base = "&".join(f"{quote(k, safe='')}={quote(v, safe='*?')}" for k, v in keys.items())

        def page(limit: int, offset: int) -> list[dict[str, Any]]:
            response = self.session.get(f"{self.config.url}/studies?{base}&limit={limit}&offset={offset}",
                                        headers={"Accept": "application/dicom+json"})
            response.raise_for_status()
            return list(response.json()) if response.content else []
        return self._pages("searching studies", lambda limit, offset: page(limit, offset))

    def series(self, study_uid: str, fields: Sequence[str] = ()) -> list[dict[str, Any]]:
        return self._pages(f"searching the series of study {study_uid}", self.dicomweb.search_for_series,
                           study_uid, fields=list(fields) or None)

    def _pages(self, what: str, search: Callable[..., list[dict[str, Any]]], *args: Any,
               **kwargs: Any) -> list[dict[str, Any]]:
        """Every result of a QIDO-RS search, page by page. (dicomweb-client's own paging never
        ends on a server that answers a page past the end with the last page again.)"""
        results: list[dict[str, Any]] = []
        seen: set[str] = set()
        while True:
            page = self._call(what, search, *args, limit=PAGE_SIZE, offset=len(results), **kwargs)
            fresh = [r for r in page if json.dumps(r, sort_keys=True) not in seen]
            seen.update(json.dumps(r, sort_keys=True) for r in fresh)
            results.extend(fresh)
            if len(page) < PAGE_SIZE or not fresh:
                return results

    def first_instance(self, study_uid: str, series_uid: str, fields: Sequence[str]) -> dict[str, Any]:
        """QIDO-RS attributes of one instance of a series (acquisition parameters)."""
        found = self._call(f"searching instances of series {series_uid}", self.dicomweb.search_for_instances,
                           study_uid, series_uid, limit=1, fields=list(fields))
        if not found:
            raise UnknownIdError(f"series {series_uid} has no instances")
        return found[0]

    def retrieve_series(self, study_uid: str, series_uid: str) -> list[pydicom.Dataset]:
        return self._call(f"retrieving series {series_uid}", self.dicomweb.retrieve_series, study_uid, series_uid)

    def store(self, datasets: Sequence[pydicom.Dataset]) -> None:
        """STOW-RS; raises when the PACS reports a failed instance."""
        response = self._call("storing a segmentation", self.dicomweb.store_instances, list(datasets))
        failed = getattr(response, "FailedSOPSequence", None)
        if failed:
            raise PacsRefusedError(f"the PACS at {self.config.url} refused {len(failed)} instance(s)")
