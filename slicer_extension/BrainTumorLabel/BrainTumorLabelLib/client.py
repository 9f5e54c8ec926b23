"""The BrainTumorLabel server's REST API, as the Slicer module uses it (standard library only).

Every call has a timeout and fails with a typed :class:`ServerError` whose message can be shown
to the user as it is: it names the server without credentials and says what went wrong.
The calls are MONAI Label's (``/info/``, ``/datastore/``, ``/infer/``, ``/activelearning/``,
``/train/``, ``/auth/``) plus the app's own ``/btl/`` endpoints: the four sequences of a study,
label versions, the clinical report, case search (similar studies, report text, patients), and the
cohorts (``/btl/jobs``, for ML admins).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEQUENCES: tuple[str, ...] = ("t1n", "t1c", "t2w", "t2f")
FINAL = "final"
# what a timed-out read raises: socket.timeout, which is TimeoutError itself only from Python 3.10
_TIMEOUTS = (TimeoutError, socket.timeout)


class ServerError(Exception):
    """A call that did not succeed; the message is fit to show to the user."""


class ServerUnreachable(ServerError):
    """No answer: the server is down, the address is wrong, or it took longer than the timeout."""


class AuthenticationRequired(ServerError):
    """The server requires a login (401), or refused the one given."""


class PermissionDenied(ServerError):
    """The user's role may not do this (403); ``reason`` is the server's."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class RequestRefused(ServerError):
    """The server understood the request and refused it (4xx): ``status`` and its reason."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ServerFault(ServerError):
    """The server failed (5xx)."""


@dataclass(frozen=True)
class StudyRow:
    """One study as the studies table shows it."""

    image_id: str
    labelled: bool
    sequences: tuple[str, ...]
    problem: str | None

    @property
    def can_segment(self) -> bool:
        return self.problem is None and len(self.sequences) == len(SEQUENCES)


@dataclass(frozen=True)
class SegmentationResult:
    """A segmentation from the server: the label file (NIfTI on the study's t1c grid, values
    1 NCR, 2 ED, 3 ET) and what came with it."""

    label_path: Path
    volumes_ml: dict[str, float]
    model_version: str
    seconds: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CohortStudy:
    """One study of a cohort: its ``state`` (queued, running, done, cached, failed, cancelled),
    the worker that ran it, the reason it failed, its volumes in mL (NCR, ED, ET, TC, WT), its
    measurements and the seconds its segmentation took."""

    study: str
    state: str
    worker: str = ""
    error: str | None = None
    volumes_ml: dict[str, float] = field(default_factory=dict)
    measurements: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class Cohort:
    """A cohort of studies the server segments as jobs: who started it and when, its ``state``
    (running, finished, cancelled), the model version, how many studies it has, how many are in
    each state, and (from :meth:`ServerClient.cohort` only) a row per study."""

    id: str
    user: str
    created: str
    finished: str | None
    state: str
    model_version: str
    studies: int
    counts: dict[str, int]
    rows: tuple[CohortStudy, ...] = ()

    @property
    def running(self) -> bool:
        return self.state == "running"


def _display_url(url: str) -> str:
    """The URL without user:password@, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class ServerClient:
    """A client of one server. ``timeout_s`` bounds every call except segmentation, which
    waits up to ``segment_timeout_s`` (inference on a CPU server takes seconds to minutes)."""

    def __init__(self, url: str, timeout_s: float = 20.0, segment_timeout_s: float = 600.0,
                 token: str | None = None) -> None:
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ServerError(f"'{_display_url(url)}' is not a server address (http://host:port)")
        if parts.username or parts.password:
            raise ServerError("put no user name or password in the server address; log in instead")
        self.url = _display_url(url)
        self.timeout_s = timeout_s
        self.segment_timeout_s = segment_timeout_s
        self.token = token

    # ---- the server
    def info(self) -> dict[str, Any]:
        """The app's description: name, version, models (with their version), strategies, labels."""
        return self._json("GET", "/info/")

    def login_required(self) -> bool:
        return bool(self._json("GET", "/auth/").get("enabled"))

    def login(self, username: str, password: str) -> None:
        """Get a token for the following calls. :class:`AuthenticationRequired` when refused."""
        body = urllib.parse.urlencode({"username": username, "password": password}).encode()
        answer = self._json("POST", "/auth/token", body, {"Content-Type": "application/x-www-form-urlencoded"})
        self.token = answer.get("access_token")

    def strategies(self) -> list[str]:
        return sorted(self.info().get("strategies", {}))

    # ---- studies
    def studies(self) -> list[StudyRow]:
        """Every study with whether it has a submitted label, its sequences and its problem."""
        objects = self._json("GET", "/datastore/?output=all").get("objects", {})
        rows = []
        for image_id, entry in sorted(objects.items()):
            image = entry.get("image", {})
            rows.append(StudyRow(image_id, FINAL in entry.get("labels", {}),
                                 tuple(s for s in SEQUENCES if s in image.get("sequences", {})), image.get("problem")))
        return rows

    def next_sample(self, strategy: str, client_id: str) -> str | None:
        """The study the strategy offers next, or None when there is none left."""
        answer = self._json("POST", f"/activelearning/{_segment(strategy)}",
                            json.dumps({"client_id": client_id}).encode(), {"Content-Type": "application/json"})
        return answer.get("id") or None

    def download_sequences(self, image_id: str, folder: Path) -> dict[str, Path]:
        """The study's four sequences as NIfTI files in ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        files = {}
        for sequence in SEQUENCES:
            data = self._request("GET", f"/btl/studies/{_segment(image_id)}/sequences/{sequence}")[1]
            path = folder / f"{image_id}-{sequence}.nii.gz"
            path.write_bytes(data)
            files[sequence] = path
        return files

    def identify_sequences(self, series: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Which series is t1n, t1c, t2w, t2f, by the server's rules. ``series``: one DICOM JSON
        instance per series with its ``uid`` and ``instances`` count:
        ``{"uid", "instances", "attributes": {"0008103E": {"vr": "LO", "Value": [...]}, ...}}``."""
        return self._json("POST", "/btl/sequences/identify", json.dumps({"series": list(series)}).encode(),
                          {"Content-Type": "application/json"})

    # ---- segmentation and labels
    def segment(self, image_id: str, model: str, folder: Path) -> SegmentationResult:
        """Run the model on a study; the label is written into ``folder``. The server keeps it
        as the study's ``original`` label."""
        status, body, headers = self._request("POST", f"/infer/{_segment(model)}?image={_query(image_id)}&output=all",
                                              b"", {"Content-Type": "application/x-www-form-urlencoded"},
                                              timeout_s=self.segment_timeout_s)
        parts = _multipart(body, headers.get("Content-Type", ""))
        if "params" not in parts or "image" not in parts:
            raise ServerFault(f"{self.url} answered the segmentation without a label")
        params = json.loads(parts["params"])
        folder.mkdir(parents=True, exist_ok=True)
        label = folder / f"{image_id}-label.nii.gz"
        label.write_bytes(parts["image"])
        return SegmentationResult(label, {k: float(v) for k, v in params.get("volumes_ml", {}).items()},
                                  str(params.get("model_version", "")),
                                  {k: float(v) for k, v in params.get("latencies", {}).items()},
                                  tuple(params.get("notes", [])))

    def submit_label(self, image_id: str, label_path: Path, info: Mapping[str, Any]) -> dict[str, Any]:
        """Save a corrected label (NIfTI on the study's t1c grid, values 0-3) as the study's next
        ``final`` version, with ``info`` (annotator, times, model version) recorded next to it."""
        body, content_type = _form({"params": json.dumps(dict(info))},
                                   {"label": (label_path.name, label_path.read_bytes())})
        return self._json("PUT", f"/datastore/label?image={_query(image_id)}&tag={FINAL}", body,
                          {"Content-Type": content_type})

    # ---- training
    def start_training(self, model: str, options: Mapping[str, Any]) -> dict[str, Any]:
        return self._json("POST", f"/train/{_segment(model)}?run_sync=false", json.dumps(dict(options)).encode(),
                          {"Content-Type": "application/json"})

    def training_status(self) -> dict[str, Any]:
        """The server's training task: ``status`` (RUNNING, DONE, ERROR, STOPPED...), and its details."""
        return self._json("GET", "/train/?all=false&check_if_running=false")

    def stop_training(self) -> dict[str, Any]:
        return self._json("DELETE", "/train/")

    # ---- clinical report
    def draft_report(self, image_id: str, prior: str | None = None, steroid_dose: str = "unknown",
                     clinical_status: str = "unknown") -> dict[str, Any]:
        """A new draft report of the study's newest label (compared with ``prior``, a study of the
        same patient, when given): measurements, AI findings to review, response category."""
        body = {"prior": prior or None, "steroid_dose": steroid_dose, "clinical_status": clinical_status}
        return self._json("POST", f"/btl/studies/{_segment(image_id)}/report", json.dumps(body).encode(),
                          {"Content-Type": "application/json"}, timeout_s=self.segment_timeout_s)

    def report(self, image_id: str) -> dict[str, Any]:
        """The study's newest report version."""
        return self._json("GET", f"/btl/studies/{_segment(image_id)}/report")

    def review_finding(self, image_id: str, key: str, state: str, text: str | None = None) -> dict[str, Any]:
        """Approve, edit (with ``text``) or decline one AI finding; returns the new version."""
        body = json.dumps({"state": state, "text": text}).encode()
        return self._json("PUT", f"/btl/studies/{_segment(image_id)}/report/findings/{_segment(key)}", body,
                          {"Content-Type": "application/json"})

    def sign_report(self, image_id: str, impression: str, recommendations: str = "") -> dict[str, Any]:
        """Sign as the logged-in user (every finding must be reviewed); the server sends a signed
        report of a PACS study to the PACS."""
        body = json.dumps({"impression": impression, "recommendations": recommendations}).encode()
        return self._json("POST", f"/btl/studies/{_segment(image_id)}/report/sign", body,
                          {"Content-Type": "application/json"}, timeout_s=self.segment_timeout_s)

    def publish_report(self, image_id: str) -> dict[str, Any]:
        """Send the signed report of a PACS study to the PACS again (after a failed first try)."""
        return self._json("POST", f"/btl/studies/{_segment(image_id)}/report/publish",
                          timeout_s=self.segment_timeout_s)

    def download_report_images(self, image_id: str, path: Path) -> Path:
        """The newest version's key images (PNG), written to ``path``."""
        path.write_bytes(self._request("GET", f"/btl/studies/{_segment(image_id)}/report/images")[1])
        return path

    def download_report_pdf(self, image_id: str, path: Path) -> Path:
        """The newest version's PDF, written to ``path``."""
        path.write_bytes(self._request("GET", f"/btl/studies/{_segment(image_id)}/report/pdf")[1])
        return path

    # ---- case search
    def similar_cases(self, image_id: str, k: int = 10, by: str = "both",
                      filters: Sequence[str] = ()) -> dict[str, Any]:
        """The ``k`` studies most like ``image_id`` by ``by`` ("image", "tumor" or "both"), among
        those passing ``filters`` (terms such as ``"wt_ml>=50"``, ``"hemisphere=right"``): hits
        with study, date, patient, ``same_patient``, score, measurements, impression, thumbnail."""
        query = f"study={_query(image_id)}&k={int(k)}&by={_query(by)}" + _filter_terms(filters)
        return self._json("GET", f"/btl/search/similar?{query}")

    def search_reports(self, text: str, k: int = 10, mode: str = "hybrid",
                       filters: Sequence[str] = ()) -> dict[str, Any]:
        """Signed reports matching ``text`` by words ("keyword"), meaning ("semantic") or both
        ("hybrid"); each hit's ``match`` holds the matching sentence, highlighted with <mark>."""
        query = f"q={_query(text)}&k={int(k)}&mode={_query(mode)}" + _filter_terms(filters)
        return self._json("GET", f"/btl/search?{query}", timeout_s=max(self.timeout_s, 60.0))

    def find_patients(self, text: str) -> dict[str, Any]:
        """A patient's studies by part of the patient id, name or accession number."""
        return self._json("GET", f"/btl/patients?q={_query(text)}")

    def search_status(self) -> dict[str, Any]:
        """The search index: how many studies, how many waiting to be indexed, problems."""
        return self._json("GET", "/btl/search/status")

    def download_thumbnail(self, image_id: str, path: Path) -> Path:
        """A searchable study's thumbnail (PNG: axial t1c through the tumor, label outline)."""
        path.write_bytes(self._request("GET", f"/btl/studies/{_segment(image_id)}/thumbnail")[1])
        return path

    def download_label_version(self, image_id: str, tag: str, version: int, path: Path) -> Path:
        """One stored version of a study's label (NIfTI on its t1c grid), written to ``path``."""
        data = self._request("GET", f"/btl/studies/{_segment(image_id)}/labels/{_segment(tag)}/{int(version)}")[1]
        path.write_bytes(data)
        return path

    # ---- cohorts (ML admins): many studies segmented on the server as jobs
    def start_cohort(self, studies: Sequence[str] | None = None) -> Cohort:
        """Segment ``studies`` of the server's datastore as a cohort, or with None every study
        that can be segmented; the labels become the studies' ``original`` versions."""
        body = {} if studies is None else {"studies": list(studies)}
        return _cohort(self._admin("POST", "/btl/jobs", json.dumps(body).encode(),
                                   {"Content-Type": "application/json"}))

    def cohorts(self) -> list[Cohort]:
        """The server's cohorts, oldest first, with their counts per state (no rows)."""
        listed = self._admin("GET", "/btl/jobs").get("value", [])
        return [_cohort(entry) for entry in listed if isinstance(entry, dict)] if isinstance(listed, list) else []

    def cohort(self, cohort_id: str) -> Cohort:
        """A cohort with every study's row."""
        return _cohort(self._admin("GET", f"/btl/jobs/{_segment(cohort_id)}"))

    def cancel_cohort(self, cohort_id: str) -> Cohort:
        """Cancel a running cohort (its queued studies do not start); :class:`RequestRefused`
        (409) when it is not running."""
        return _cohort(self._admin("DELETE", f"/btl/jobs/{_segment(cohort_id)}"))

    def _admin(self, method: str, path: str, body: bytes | None = None,
               headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """A call of an ML-admin route: a 403 says that the batch needs that role."""
        try:
            return self._json(method, path, body, headers)
        except PermissionDenied as denied:
            raise PermissionDenied("batch segmentation needs the ML admin role"
                                   + (f": {denied.reason}" if denied.reason else ""), denied.reason) from None

    # ---- transport
    def _json(self, method: str, path: str, body: bytes | None = None,
              headers: Mapping[str, str] | None = None, timeout_s: float | None = None) -> dict[str, Any]:
        data = self._request(method, path, body, headers, timeout_s)[1]
        try:
            value = json.loads(data or b"{}")
        except json.JSONDecodeError:
            raise ServerFault(f"{self.url} answered {path.split('?')[0]} with something that is not JSON") from None
        return value if isinstance(value, dict) else {"value": value}

    def _request(self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None,
                 timeout_s: float | None = None) -> tuple[int, bytes, Mapping[str, str]]:
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=dict(headers or {}))
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        what = f"{method} {path.split('?')[0]}"
        try:
            with urllib.request.urlopen(request, timeout=timeout_s or self.timeout_s) as response:
                return response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            reason = _reason(error.read())
            if error.code == 401:
                raise AuthenticationRequired(f"{self.url} requires a login{': ' + reason if reason else ''}") from None
            if error.code == 403:
                raise PermissionDenied(f"your role may not do this ({what}){': ' + reason if reason else ''}",
                                       reason) from None
            if error.code >= 500:
                raise ServerFault(f"{self.url} failed ({error.code}) on {what}"
                                  f"{': ' + reason if reason else ''}") from None
            raise RequestRefused(reason or f"{self.url} refused {what} ({error.code})", error.code) from None
        except (urllib.error.URLError, OSError) as error:
            cause = getattr(error, "reason", error)
            if isinstance(cause, _TIMEOUTS):
                raise ServerUnreachable(f"{self.url} did not answer {what} within "
                                        f"{timeout_s or self.timeout_s:g} s") from None
            raise ServerUnreachable(f"cannot reach {self.url} ({type(cause).__name__}: {cause})") from None


def _cohort(answer: Mapping[str, Any]) -> Cohort:
    """A cohort from the server's JSON (``/btl/jobs``)."""
    rows = tuple(CohortStudy(str(row.get("study", "")), str(row.get("state", "")), str(row.get("worker") or ""),
                             row.get("error") or None,
                             {str(k): float(v) for k, v in (row.get("volumes_ml") or {}).items()},
                             dict(row.get("measurements") or {}), float(row.get("seconds") or 0.0))
                 for row in answer.get("rows") or [] if isinstance(row, dict))
    return Cohort(str(answer.get("id", "")), str(answer.get("user") or ""), str(answer.get("created") or ""),
                  answer.get("finished") or None, str(answer.get("state", "")), str(answer.get("model_version") or ""),
                  int(answer.get("studies") or 0), {str(k): int(v) for k, v in (answer.get("counts") or {}).items()},
                  rows)


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _query(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _filter_terms(filters: Sequence[str]) -> str:
    """``&term&term`` of measurement filters, each quoted whole (the server reads ``field<op>value``)."""
    return "".join("&" + urllib.parse.quote(term.strip(), safe="") for term in filters if term.strip())


def _reason(body: bytes) -> str:
    """The server's reason: FastAPI's ``{"detail": ...}``, or the text."""
    try:
        detail = json.loads(body).get("detail")
    except (json.JSONDecodeError, AttributeError):
        return body.decode("utf-8", "replace").strip()[:300]
    if isinstance(detail, list):  # validation errors
        return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)[:300]
    return str(detail or "")[:300]


def _multipart(body: bytes, content_type: str) -> dict[str, bytes]:
    """The parts of a ``multipart/form-data`` answer by name (standard library ``email``)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    parts: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if name:
            parts[str(name)] = payload if isinstance(payload, bytes) else b""
    return parts


def _form(fields: Mapping[str, str], files: Mapping[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body."""
    boundary = uuid.uuid4().hex
    chunks = []
    for name, value in fields.items():
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                      + value.encode() + b"\r\n")
    for name, (filename, data) in files.items():
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                      f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"
