"""A private Orthanc for tests and demos: a free port, temporary storage, HTTP basic auth, DICOMweb on.

Orthanc 1.10 has no setting for the address it binds: its HTTP port listens on every interface
of the machine, and it refuses every request that does not come from the machine itself
(``RemoteAccessAllowed`` false), before authentication. Its DICOM (DIMSE) port is off
(``DicomServerEnabled`` false): nothing here speaks DIMSE.

Used by the test suite and by ``make orthanc`` for trying the PACS path by hand. Needs the
Debian packages ``orthanc`` and ``orthanc-dicomweb`` (``make test`` installs them).

    python -m lib.pacs.sandbox [--port 8042] [--studies FOLDER]   # runs until Ctrl+C
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

from lib.net import free_loopback_port

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


@dataclass
class OrthancSandbox:
    """A running private Orthanc. ``dicomweb_url`` is what the server's ``--studies`` takes."""

    process: subprocess.Popen
    folder: Path
    http_port: int
    username: str
    password: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def auth_header(self) -> dict[str, str]:
        token = b64encode(f"{self.username}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def request(self, path: str, data: bytes | None = None, method: str | None = None,
                content_type: str = "application/dicom", timeout: float = 30.0) -> bytes:
        """An authenticated request to Orthanc's REST API (e.g. ``/instances`` with DICOM bytes)."""
        headers = {**self.auth_header(), **({"Content-Type": content_type} if data is not None else {})}
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.read()

    def upload_folder(self, folder: str | Path) -> int:
        """Store every ``*.dcm`` under ``folder``; returns the number of instances sent."""
        files = sorted(Path(folder).rglob("*.dcm"))
        for f in files:
            self.request("/instances", f.read_bytes(), "POST")
        return len(files)

    def delete_series(self, modality: str) -> int:
        """Delete every series of ``modality`` (e.g. ``SEG``: reset the labels of a demo or a
        test); returns how many were deleted."""
        query = json.dumps({"Level": "Series", "Query": {"Modality": modality}}).encode()
        found = json.loads(self.request("/tools/find", query, "POST", content_type="application/json"))
        for orthanc_id in found:
            self.request(f"/series/{orthanc_id}", method="DELETE")
        return len(found)

    def pause(self) -> None:
        """Freeze Orthanc (SIGSTOP): connections open but nothing answers, like a hung PACS."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop Orthanc and delete its storage."""
        if self.process.poll() is None:
            self.resume()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> OrthancSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_orthanc(http_port: int | None = None, username: str = "btl", password: str | None = None,
                  timeout_s: float = 60.0, remote_access: bool = False) -> OrthancSandbox:
    """Start Orthanc with its own configuration and storage in a new temporary folder and
    wait until its REST API answers. ``remote_access``: answer other hosts too (still with the
    password), for a test's own network of hosts in network namespaces. Raises
    ``RuntimeError`` when Orthanc is not installed or does not come up (its log is in the
    message)."""
    if not Path(ORTHANC).exists() or not Path(DICOMWEB_PLUGIN).exists():
        raise RuntimeError("Orthanc with the DICOMweb plugin is not installed "
                           "(Debian packages 'orthanc' and 'orthanc-dicomweb'; make test installs them)")
    folder = Path(tempfile.mkdtemp(prefix="btl-orthanc-"))
    port = http_port or free_loopback_port()
    password = password or secrets.token_urlsafe(12)
    config = {
        "Name": "BrainTumorLabel sandbox",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"),
        "HttpPort": port,
        "DicomServerEnabled": False,
        "RemoteAccessAllowed": remote_access,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {username: password},
        "Plugins": [DICOMWEB_PLUGIN],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True,
                     "StudiesMetadata": "Full", "SeriesMetadata": "Full"},
        "StableAge": 1,
        "HttpThreadsCount": 20,
        "StorageCompression": False,
    }
    (folder / "orthanc.json").write_text(json.dumps(config, indent=1))
    with open(folder / "orthanc.log", "wb") as log:  # the child keeps its own handle
        process = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    sandbox = OrthancSandbox(process, folder, port, username, password)
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            text = (folder / "orthanc.log").read_text(errors="replace")[-3000:]
            shutil.rmtree(folder, ignore_errors=True)
            raise RuntimeError(f"Orthanc exited with code {process.returncode}:\n{text}")
        try:
            sandbox.request("/system", timeout=2)
            return sandbox
        except OSError:
            if time.monotonic() > deadline:
                sandbox.stop()
                raise RuntimeError(f"Orthanc did not answer within {timeout_s} s") from None
            time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8042)
    ap.add_argument("--studies", type=Path, help="folder of DICOM files to upload")
    ap.add_argument("--allow-remote", action="store_true",
                    help="answer other hosts too (a test's own hosts in network namespaces)")
    args = ap.parse_args(argv)
    with start_orthanc(args.port, password=os.environ.get("BTL_ORTHANC_PASSWORD"),
                       remote_access=args.allow_remote) as orthanc:
        if args.studies:
            print(f"uploaded {orthanc.upload_folder(args.studies)} instances from {args.studies}")
        print(f"Orthanc: {orthanc.url}  DICOMweb: {orthanc.dicomweb_url}  process {orthanc.process.pid}", flush=True)
        print(f"user '{orthanc.username}', password from BTL_ORTHANC_PASSWORD"
              + ("" if os.environ.get("BTL_ORTHANC_PASSWORD") else f" (not set; generated: {orthanc.password})"))
        print(f"serve it (another terminal): BTL_PACS_USERNAME={orthanc.username} BTL_PACS_PASSWORD=<password> "
              f"make run-pacs PACS_URL={orthanc.dicomweb_url}")
        print("Ctrl+C stops it and deletes its storage.")
        try:
            orthanc.process.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
