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
POSTGRESQL_INDEX_PLUGIN = "/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so"
POSTGRESQL_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass
class PostgresSandbox:
    """A private PostgreSQL server (an Orthanc index, as a large archive keeps it): its own data
    folder, a port on loopback, a ``btl`` role trusted from loopback only."""

    folder: Path
    port: int
    user: str = "btl"
    database: str = "orthanc"

    def _as_owner(self, command: list[str]) -> list[str]:
        # PostgreSQL refuses to run as root: as root, run it as the postgres system user
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command

    def stop(self) -> None:
        subprocess.run(self._as_owner([str(POSTGRESQL_BIN / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast",
                                       "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PostgresSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_postgresql(timeout_s: float = 60.0) -> PostgresSandbox:
    """A new PostgreSQL cluster in a temporary folder, started on a free loopback port, with an
    ``orthanc`` database. Needs the Debian package ``postgresql`` (``make test`` installs it)."""
    if not (POSTGRESQL_BIN / "initdb").exists():
        raise RuntimeError("PostgreSQL is not installed (Debian package 'postgresql'; make test installs it)")
    folder = Path(tempfile.mkdtemp(prefix="btl-postgresql-"))
    sandbox = PostgresSandbox(folder, free_loopback_port())
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")

    def run(command: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(sandbox._as_owner(command), capture_output=True, text=True, timeout=timeout_s)

    steps = [[str(POSTGRESQL_BIN / "initdb"), "-D", str(folder / "data"), "-U", sandbox.user, "-A", "trust",
              "--no-sync", "-E", "UTF8"],
             [str(POSTGRESQL_BIN / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "postgresql.log"), "-w",
              "-o", f"-c listen_addresses=127.0.0.1 -p {sandbox.port} -k {folder} -c fsync=off", "start"],
             [str(POSTGRESQL_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(sandbox.port), "-U", sandbox.user,
              sandbox.database]]
    for step in steps:
        done = run(step)
        if done.returncode:
            log = (folder / "postgresql.log").read_text(errors="replace")[-2000:] \
                if (folder / "postgresql.log").exists() else ""
            sandbox.stop()
            raise RuntimeError(f"PostgreSQL: {Path(step[0]).name} failed: {done.stderr[-2000:]}\n{log}")
    return sandbox


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
                  timeout_s: float = 60.0, remote_access: bool = False,
                  postgresql: PostgresSandbox | None = None) -> OrthancSandbox:
    """Start Orthanc with its own configuration and storage in a new temporary folder and
    wait until its REST API answers. ``remote_access``: answer other hosts too (still with the
    password), for a test's own network of hosts in network namespaces. ``postgresql``: keep
    Orthanc's index in that PostgreSQL (the files stay on disk), as a large archive does. Raises
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
    if postgresql is not None:
        if not Path(POSTGRESQL_INDEX_PLUGIN).exists():
            raise RuntimeError("Orthanc's PostgreSQL plugin is not installed (Debian package 'orthanc-postgresql')")
        config["Plugins"] = [DICOMWEB_PLUGIN, POSTGRESQL_INDEX_PLUGIN]
        config["PostgreSQL"] = {"EnableIndex": True, "EnableStorage": False, "Host": "127.0.0.1",
                                "Port": postgresql.port, "Database": postgresql.database,
                                "Username": postgresql.user, "Password": "", "Lock": False}
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
