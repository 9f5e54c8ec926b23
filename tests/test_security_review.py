"""What the 2026-12 outside security review found, each closed and checked against a real server
process (and a real OpenID Connect provider where tokens matter). Numbers are the review's items.

1 a client names a server path to segment; 2 a session tar extracted out of its folder;
3 the loopback guard read from the wrong ``--host``; 4 routes the product does not offer, and
unaudited writes; 5 label provenance from the client; 6 key downloads that stall logins;
7 memory taken by a small upload; 8 uploads left in the temporary folder; 9 a report made
unreadable by a bad draft; 10 the low ones (PACS ids are in tests/test_server_pacs.py).
"""

from __future__ import annotations

import concurrent.futures
import gzip
import json
import os
import socket
import stat
import struct
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from _cases import make_studies, t1c_path, truth_path, write_label_like
from _fuzz import ESCAPED, NOT_SERVED, escaping_tar
from _http import call, detail
from _oidc import oidc_provider, own_oidc_issuer
from _server import REPO, monailabel_process

MODEL = "brats_segresnet"
AUDIENCE = "braintumorlabel"
LIMITS = {"BTL_HEADER_TIMEOUT_S": "3", "BTL_BODY_GRACE_S": "2", "BTL_BODY_MIN_RATE_KIB_S": "16",
          "BTL_MAX_CONNECTIONS": "8"}


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Iterator[dict]:
    """A server with authentication off, its own temporary folder, short timeouts; two studies,
    and a third case folder outside the studies folder."""
    root = tmp_path_factory.mktemp("studies")
    ids = make_studies(root, 2, seed=61)
    outside = tmp_path_factory.mktemp("outside")
    make_studies(outside, 1, seed=62)
    temp = tmp_path_factory.mktemp("server-tmp")
    env = {"TMPDIR": str(temp), **LIMITS}
    with monailabel_process(root, tmp_path_factory.mktemp("log") / "server.log", env=env) as (url, proc):
        yield {"url": url, "root": root, "ids": ids, "outside": next(outside.iterdir()), "temp": temp, "pid": proc.pid}


def _audit(root: Path) -> list[dict]:
    path = root / ".braintumorlabel" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


def _nifti(size: tuple[int, ...], datatype: int, bitpix: int, data_bytes: int) -> bytes:
    """A gzipped NIfTI-1 declaring ``size`` voxels of ``datatype``, with ``data_bytes`` of data."""
    header = bytearray(348)
    struct.pack_into("<i", header, 0, 348)
    struct.pack_into("<8h", header, 40, len(size), *size, *([1] * (7 - len(size))))
    struct.pack_into("<hh", header, 70, datatype, bitpix)
    struct.pack_into("<8f", header, 76, 1, 1, 1, 1, 1, 1, 1, 1)
    struct.pack_into("<f", header, 108, 352)
    header[344:348] = b"n+1\0"
    return gzip.compress(bytes(header) + b"\0" * 4 + os.urandom(data_bytes))


# --- 1 a server path named as the image ---------------------------------------------------


def test_1_a_client_cannot_have_a_server_path_segmented(local):
    url, outside = local["url"], local["outside"]
    before = _audit(local["root"])
    answers = {}
    for image in (str(outside), str(outside) + "-does-not-exist", str(t1c_path(outside))):
        answers[image] = call(url, "POST", f"/infer/{MODEL}?image={urllib.parse.quote(image)}&output=json",
                              fields={"params": json.dumps({"uploaded": True, "image": image})})
    for image, (status, body) in answers.items():
        assert status == 404, body
        said = detail((status, body)).replace(Path(image).name, "<name>")  # no server folder is echoed
        assert said == "unknown image id '<name>'"  # the same for a path that exists and one that does not
    assert call(url, "POST", f"/infer/wsi/{MODEL}?image={urllib.parse.quote(str(outside))}",
                body=json.dumps({"params": {"uploaded": True}}).encode(), content_type="application/json")[0] == 404
    assert call(url, "POST", f"/infer/wsi_v2/{MODEL}", fields={"wsi": json.dumps({"image": str(outside)})})[0] == 404
    assert _audit(local["root"]) == before
    assert not list(local["root"].glob(f"labels/*/{outside.name}"))


# --- 2 a session tar -----------------------------------------------------------------------


def test_2_no_upload_is_extracted_and_the_audit_trail_cannot_be_replaced(local):
    before = _audit(local["root"])
    status, _ = call(local["url"], "PUT", "/session/?uncompress=true", files={"files": escaping_tar()})
    assert status == 404
    assert not list(Path(ESCAPED).parent.glob(Path(ESCAPED).name + "*"))
    assert _audit(local["root"]) == before


# --- 3 the loopback guard on the address bound ---------------------------------------------


@pytest.mark.parametrize("hosts", [["--host", "127.0.0.1", "--host", "0.0.0.0"], ["-i", "127.0.0.1", "--host=0.0.0.0"]])
def test_3_monailabels_own_command_cannot_bind_all_addresses_without_authentication(tmp_path, hosts):
    bin_dir = Path(sys.executable).parent
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BTL_")},
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}  # its script runs `python -m`
    started = subprocess.run([str(Path(sys.executable).parent / "monailabel"), "start_server", "--app",
                              str(REPO / "monailabel_app"), "--studies", str(tmp_path), "--uvicorn_app",
                              "lib.server:app", "--port", "1", *hosts], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=300)
    assert started.returncode != 0
    assert "refusing to serve 0.0.0.0 without authentication" in started.stdout + started.stderr


def test_3_btl_server_refuses_another_address_without_authentication(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BTL_")}
    started = subprocess.run([str(Path(sys.executable).parent / "btl-server"), "--studies", str(tmp_path),
                              "--host", "0.0.0.0", "--port", "1"], env=env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 2 and "refusing to serve 0.0.0.0 without authentication" in started.stderr


# --- 4 routes not offered, and every write audited -------------------------------------------


@pytest.mark.parametrize(("method", "path"), NOT_SERVED)
def test_4_routes_the_product_does_not_offer_are_404(local, method, path):
    status, body = call(local["url"], method, path, body=b"{}" if method in ("POST", "PUT") else None,
                        content_type="application/json")
    assert status == 404, (method, path, body[:200])


# --- 5 label provenance ----------------------------------------------------------------------


def test_5_a_submission_cannot_forge_its_provenance(local):
    url, study = local["url"], local["ids"][0]
    assert call(url, "POST", f"/infer/{MODEL}?image={study}&output=json")[0] == 200
    truth = truth_path(local["root"] / study).read_bytes()
    forged = call(url, "PUT", f"/datastore/label?image={study}&tag=final", files={"label": truth},
                  fields={"params": json.dumps({"model_version": "forged-model-v9", "original_version": 999})})
    assert forged[0] == 422 and "999" in detail(forged)
    saved = call(url, "PUT", f"/datastore/label?image={study}&tag=final", files={"label": truth},
                 fields={"params": json.dumps({"model_version": "forged-model-v9", "note": "checked"})})
    assert saved[0] == 200, saved
    record = json.loads(call(url, "GET", f"/btl/studies/{study}/labels/final")[1])[-1]
    originals = json.loads(call(url, "GET", f"/btl/studies/{study}/labels/original")[1])
    assert record["model_version"] == originals[-1]["model_version"] != "forged-model-v9"
    assert record["original_version"] == originals[-1]["version"] and record["note"] == "checked"
    amended = call(url, "PUT", f"/datastore/label/info?label={study}&tag=final",
                   fields={"params": json.dumps({"model_version": "forged-again", "original_version": 1})})
    assert amended[0] == 200
    latest = json.loads(call(url, "GET", f"/btl/studies/{study}/labels/final")[1])[-1]
    assert (latest["model_version"], latest["original_version"]) == (record["model_version"],
                                                                      record["original_version"])


# --- 7 memory ------------------------------------------------------------------------------------


def test_7_a_small_upload_declaring_gigabytes_is_refused_from_its_header(local):
    url, study, pid = local["url"], local["ids"][1], local["pid"]
    image = _nifti((400, 400, 400, 4), 64, 64, 1 << 20)  # 2 GB of float64 once decoded
    label = _nifti((634, 634, 634), 64, 64, 1 << 20)  # 1.9 GB
    assert len(image) < 2 << 20
    rss = _rss_mb(pid)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = [pool.submit(call, url, "PUT", "/datastore/image?image=bomb", files={"file": image}),
                   pool.submit(call, url, "POST", f"/infer/{MODEL}?output=json", files={"file": image}),
                   pool.submit(call, url, "PUT", f"/datastore/label?image={study}&tag=final", files={"label": label}),
                   pool.submit(call, url, "PUT", f"/datastore/label?image={study}&tag=final", files={"label": label})]
        results = [a.result() for a in answers]
    assert [status for status, _ in results] == [413, 413, 413, 413], results
    assert "MB of voxels once decoded" in detail(results[0])
    assert _rss_mb(pid) - rss < 300  # the review saw +4.4 GB


# --- 8 nothing left in the temporary folder -------------------------------------------------


def test_8_refused_uploads_leave_nothing_in_the_temporary_folder(local):
    url, study, temp = local["url"], local["ids"][1], local["temp"]
    before = sorted(p.name for p in temp.iterdir())
    t1c = t1c_path(local["root"] / study)
    wrong_values = write_label_like(t1c, temp.parent / "sevens.nii.gz", fill=7).read_bytes()
    for path, files in [(f"/datastore/label?image={study}&tag=final", {"label": wrong_values}),
                        (f"/datastore/label?image={study}&tag=final", {"label": b"not an image"}),
                        ("/datastore/label?image=no-such-study&tag=final", {"label": wrong_values}),
                        ("/datastore/image?image=broken", {"file": b"\x1f\x8b" + os.urandom(5000)}),
                        (f"/infer/{MODEL}?output=json", {"file": gzip.compress(os.urandom(3000))}),
                        (f"/infer/{MODEL}?output=json", {"file": t1c.read_bytes()})]:  # one channel, not four
        method = "POST" if path.startswith("/infer") else "PUT"
        status, body = call(url, method, path, files=files)
        assert 400 <= status < 500, (path, status, body[:300])
        assert str(temp) not in body.decode(errors="replace")  # no server path in the answer
    assert sorted(p.name for p in temp.iterdir()) == before


# --- 9 a report stays readable ----------------------------------------------------------------


def test_9_a_draft_with_an_unknown_prior_changes_nothing(local):
    url, study, root = local["url"], local["ids"][1], local["root"]
    truth = truth_path(root / study).read_bytes()
    assert call(url, "PUT", f"/datastore/label?image={study}&tag=final", files={"label": truth})[0] == 200
    json_body = {"content_type": "application/json"}
    report = json.loads(call(url, "POST", f"/btl/studies/{study}/report",
                             body=json.dumps({"prior": None}).encode(), **json_body)[1])
    for finding in report["findings"]:
        assert call(url, "PUT", f"/btl/studies/{study}/report/findings/{finding['key']}",
                    body=b'{"state": "approved"}', **json_body)[0] == 200
    signed = call(url, "POST", f"/btl/studies/{study}/report/sign", body=b'{"impression": "Stable."}', **json_body)
    assert signed[0] == 200, signed
    for prior in ("no-such-study", "../../etc"):
        refused = call(url, "POST", f"/btl/studies/{study}/report", body=json.dumps({"prior": prior}).encode(),
                       **json_body)
        assert refused[0] in (404, 422), refused
    status, body = call(url, "GET", f"/btl/studies/{study}/report")
    assert status == 200 and json.loads(body)["status"] == "final"
    folder = root / ".braintumorlabel" / "reports" / study
    assert not [p for p in folder.iterdir() if p.suffix in (".json", ".reserved") and p.stat().st_size == 0
                and p.suffix == ".json"]
    assert not list(folder.glob("*.reserved"))
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert modes and all(mode == 0o600 for mode in modes.values()), modes  # 10: they name the patient


# --- 10 the low ones ------------------------------------------------------------------------------


def test_10_slow_headers_and_slow_bodies_are_cut_off(local):
    host, port = urllib.parse.urlsplit(local["url"]).hostname, urllib.parse.urlsplit(local["url"]).port
    with socket.create_connection((host, port), timeout=30) as slow:  # slowloris: a byte every 2 s
        started, closed = time.monotonic(), False
        for byte in b"GET /info/ HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 100:
            try:
                slow.sendall(bytes([byte]))
                slow.settimeout(2.0)
                closed = slow.recv(100) == b""
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
            if closed or time.monotonic() - started > 30:
                break
        assert closed and time.monotonic() - started < 10  # BTL_HEADER_TIMEOUT_S=3
    with socket.create_connection((host, port), timeout=30) as slow:  # a body at 1 byte/s
        slow.sendall(f"PUT /datastore/label?image={local['ids'][0]}&tag=final HTTP/1.1\r\nHost: x\r\n"
                     "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n".encode())
        started, answer = time.monotonic(), b""
        try:
            while time.monotonic() - started < 20 and not answer:
                slow.sendall(b"x")
                slow.settimeout(1.0)
                try:
                    answer = slow.recv(200)
                except TimeoutError:
                    pass
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert time.monotonic() - started < 10 and (answer.startswith(b"HTTP/1.1 408") or not answer), answer


def test_10_connections_are_capped(local):
    host, port = urllib.parse.urlsplit(local["url"]).hostname, urllib.parse.urlsplit(local["url"]).port
    idle = [socket.create_connection((host, port), timeout=10) for _ in range(8)]  # BTL_MAX_CONNECTIONS=8
    try:
        time.sleep(0.5)
        assert call(local["url"], "GET", "/auth/")[0] == 503
    finally:
        for connection in idle:
            connection.close()
    time.sleep(1)
    assert call(local["url"], "GET", "/auth/")[0] == 200


def test_10_answers_name_no_server_path(local):
    url, root = local["url"], local["root"]
    objects = json.loads(call(url, "GET", "/datastore/?output=all")[1])["objects"]
    info = json.loads(call(url, "GET", "/info/")[1])
    sample = json.loads(call(url, "POST", "/activelearning/first", body=b"{}", content_type="application/json")[1])
    for answer in (objects, info, sample):
        assert str(root) not in json.dumps(answer) and str(REPO) not in json.dumps(answer)
    study = local["ids"][0]
    assert objects[study]["image"]["sequences"]["t1c"] == f"{study}/{study}-t1c.nii.gz"


def test_10_cors_allows_no_origin_by_default(local):
    import urllib.request

    request = urllib.request.Request(local["url"] + "/info/", headers={"Origin": "https://evil.example"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert "access-control-allow-origin" not in {k.lower() for k in response.headers}


def test_10_a_client_name_goes_into_the_audit_trail_only_when_it_is_plain(local):
    import urllib.request

    url, study, root = local["url"], local["ids"][0], local["root"]
    for name, expected in (("3D Slicer BrainTumorLabel", 200), ("x\u0007" + "y" * 100, 422)):
        request = urllib.request.Request(f"{url}/infer/{MODEL}?image={study}&output=json", method="POST",
                                         headers={"X-Client-Name": name.encode("latin-1", "replace").decode("latin-1")})
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        assert status == expected
    assert _audit(root)[-1]["client"].endswith("3D Slicer BrainTumorLabel")


# --- with a real OpenID Connect provider ---------------------------------------------------------


@pytest.fixture(scope="module")
def secured(tmp_path_factory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("secured-studies")
    ids = make_studies(root, 1, seed=63)
    with oidc_provider(audience=AUDIENCE) as provider:
        env = {"BTL_OIDC_ISSUER": provider.issuer, "BTL_OIDC_AUDIENCE": AUDIENCE, "BTL_OIDC_TIMEOUT_S": "2",
               "BTL_LOGIN_ATTEMPTS_PER_MIN": "5"}
        with monailabel_process(root, tmp_path_factory.mktemp("log") / "server.log", env=env) as (url, _):
            tokens = {role: provider.token(client, AUDIENCE) for role, client in
                      (("clinician", "clinician-client"), ("annotator", "annotator-client"),
                       ("admin", "admin-client"))}
            yield {"url": url, "root": root, "ids": ids, "provider": provider, "tokens": tokens}


def test_4_routes_not_offered_are_404_also_for_an_administrator(secured):
    for method, path in NOT_SERVED:
        status, _ = call(secured["url"], method, path, token=secured["tokens"]["admin"])
        assert status == 404, (method, path)


def test_4_every_write_is_audited_as_the_tokens_user(secured, tmp_path):
    url, root, study, tokens = secured["url"], secured["root"], secured["ids"][0], secured["tokens"]
    label = truth_path(root / study).read_bytes()
    four_channel = tmp_path / "new.nii.gz"
    import SimpleITK as sitk

    channels = [sitk.ReadImage(str(next((root / study).glob(f"*-{s}.nii.gz")))) for s in ("t1n", "t1c", "t2w", "t2f")]
    sitk.WriteImage(sitk.JoinSeries(channels), str(four_channel))
    writes = [
        ("clinician", "POST", f"/infer/{MODEL}?image={study}&output=json", {}, "label.save"),
        ("annotator", "POST", "/activelearning/first", {"body": b"{}", "content_type": "application/json"},
         "study.lease"),
        ("annotator", "PUT", f"/datastore/label?image={study}&tag=final", {"files": {"label": label}}, "label.save"),
        ("annotator", "PUT", f"/datastore/label/info?label={study}&tag=final",
         {"fields": {"params": '{"reviewed": true}'}}, "label.amend"),
        ("admin", "PUT", "/datastore/?image=added", {"files": {"file": four_channel.read_bytes()}}, "image.add"),
        ("admin", "DELETE", "/datastore/?id=added", {}, "image.remove"),
        ("admin", "DELETE", f"/datastore/label?id={study}&tag=final", {}, "label.remove"),
    ]
    for role, method, path, extras, action in writes:
        before = len(_audit(root))
        status, body = call(url, method, path, token=tokens[role], **extras)
        assert status == 200, (path, status, body[:300])
        events = _audit(root)[before:]
        assert [e["action"] for e in events] == [action], (path, events)
        assert events[0]["user"] == f"{role}-client", events


def test_6_forged_key_ids_do_not_stall_a_valid_login(secured):
    url, provider, clinician = secured["url"], secured["provider"], secured["tokens"]["clinician"]
    assert call(url, "GET", "/info/", token=clinician)[0] == 200  # its key is cached
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = [jwt.encode({"iss": provider.issuer, "aud": AUDIENCE, "exp": time.time() + 60}, key, algorithm="RS256",
                         headers={"kid": f"unknown-{i}"}) for i in range(8)]
    provider.pause()  # the provider hangs: a key download waits for its timeout
    try:
        with concurrent.futures.ThreadPoolExecutor(9) as pool:
            refused = [pool.submit(call, url, "GET", "/info/", token=token) for token in forged]
            time.sleep(0.3)
            started = time.monotonic()
            assert call(url, "GET", "/info/", token=clinician)[0] == 200
            waited_s = time.monotonic() - started
            assert [r.result()[0] for r in refused] == [401] * 8
    finally:
        provider.resume()
    assert waited_s < 1.5  # the review measured 35 s


def test_10_password_logins_are_throttled(secured):
    url = secured["url"]
    statuses = [call(url, "POST", "/auth/token", fields={"username": "dr.who", "password": f"guess {i}"})[0]
                for i in range(7)]
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]  # BTL_LOGIN_ATTEMPTS_PER_MIN=5


@pytest.fixture(scope="module")
def own_issuer_server(tmp_path_factory) -> Iterator[dict]:
    """A server trusting an issuer whose key the test holds (for tokens no real provider issues)."""
    root = tmp_path_factory.mktemp("own-issuer-studies")
    make_studies(root, 1, seed=64)
    with own_oidc_issuer(AUDIENCE) as issuer:
        env = {"BTL_OIDC_ISSUER": issuer.url, "BTL_OIDC_AUDIENCE": AUDIENCE, "BTL_OIDC_MAX_TOKEN_LIFETIME_S": "3600"}
        with monailabel_process(root, tmp_path_factory.mktemp("log") / "server.log", env=env) as (url, _):
            yield {"url": url, "issuer": issuer}


def test_10_dates_as_strings_and_long_lifetimes_are_refused(own_issuer_server):
    url, issuer = own_issuer_server["url"], own_issuer_server["issuer"]
    assert call(url, "GET", "/info/", token=issuer.token())[0] == 200
    for token in (issuer.token(exp=str(int(time.time()) + 300)),
                  issuer.token(exp=int(time.time()) + 30 * 86400)):
        status, body = call(url, "GET", "/info/", token=token)
        assert status == 401 and ("not a number" in detail((status, body)) or "lifetime" in detail((status, body)))
