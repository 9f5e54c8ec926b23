"""Authentication and roles on a real server process, with tokens from a real OpenID Connect
provider on loopback: every kind of endpoint with every role and with none; who saved a label
is the token's user, whatever the client claims; a login the provider refuses is a 401."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _cases import make_studies, truth_path
from _http import call
from _oidc import oidc_provider
from _server import monailabel_server
from BrainTumorLabelLib.client import AuthenticationRequired, ServerClient

MODEL = "brats_segresnet"
ROLES = ("clinician", "annotator", "ml_admin")
CLIENT = {"clinician": "clinician-client", "annotator": "annotator-client", "ml_admin": "admin-client"}


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("studies")
    make_studies(root, 1, seed=49)
    return root


@pytest.fixture(scope="module")
def secured(studies, tmp_path_factory):
    with oidc_provider(audience="braintumorlabel") as provider:
        env = {"BTL_OIDC_ISSUER": provider.issuer, "BTL_OIDC_AUDIENCE": "braintumorlabel"}
        with monailabel_server(studies, tmp_path_factory.mktemp("log") / "server.log", env=env) as url:
            tokens = {role: provider.token(CLIENT[role], "braintumorlabel") for role in ROLES}
            tokens["none"] = provider.token("norole-client", "braintumorlabel")
            tokens["other api"] = provider.token("wrongaud-client")
            yield url, tokens


def _image(studies: Path) -> str:
    return next(p.name for p in studies.iterdir() if p.name.startswith("SynBraTS"))


def _requests(image: str) -> list[tuple[str, str, str, dict]]:
    """(role needed, method, path, request extras): requests that are harmless when allowed."""
    label = {"files": {"label": b"not a label"}}
    return [
        ("clinician", "GET", "/info/", {}),
        ("clinician", "GET", "/datastore/?output=stats", {}),
        ("clinician", "GET", f"/datastore/image/info?image={image}", {}),
        ("clinician", "GET", f"/btl/studies/{image}/sequences/t1c", {}),
        ("clinician", "GET", f"/btl/studies/{image}/labels/final", {}),
        ("clinician", "POST", f"/infer/{MODEL}?image=no-such-study&output=json", {}),
        ("clinician", "GET", "/train/", {}),
        ("clinician", "GET", "/btl/models", {}),
        ("annotator", "PUT", "/datastore/label?image=no-such-study&tag=final", label),
        ("annotator", "PUT", "/datastore/label/info?label=no-such-study&tag=final", {"fields": {"params": "{}"}}),
        ("annotator", "POST", "/activelearning/nosuch", {"body": b"{}", "content_type": "application/json"}),
        ("ml_admin", "DELETE", "/datastore/label?id=no-such-study&tag=final", {}),
        ("ml_admin", "DELETE", "/datastore/?id=no-such-study", {}),
        ("ml_admin", "PUT", "/datastore/image?image=upload", {"files": {"file": b"junk"}}),
        ("ml_admin", "POST", f"/train/{MODEL}", {"body": b'{"max_epochs": 0}', "content_type": "application/json"}),
        ("ml_admin", "GET", "/datastore/dataset", {}),
        ("ml_admin", "GET", "/btl/audit", {}),
        ("ml_admin", "POST", "/btl/admin/models/no-such-version/serve",
         {"body": b"{}", "content_type": "application/json"}),
        ("ml_admin", "POST", "/train/", {"body": b'{"brats_segresnet": {"max_epochs": 0}}',
                                         "content_type": "application/json"}),
    ]


def _as(url: str, token: str | None, method: str, path: str, extras: dict) -> int:
    return call(url, method, path, token=token, **extras)[0]


def test_every_endpoint_checks_its_role(secured, studies):
    url, tokens = secured
    for needed, method, path, extras in _requests(_image(studies)):
        assert _as(url, None, method, path, extras) == 401, (method, path)
        assert _as(url, tokens["none"], method, path, extras) == 403, (method, path)
        assert _as(url, tokens["other api"], method, path, extras) == 401, (method, path)
        for role in ROLES:
            status = _as(url, tokens[role], method, path, extras)
            allowed = ROLES.index(role) >= ROLES.index(needed)
            assert (status not in (401, 403)) if allowed else status == 403, (role, method, path, status)


def test_public_routes_need_no_token(secured):
    url, _ = secured
    status, body = call(url, "GET", "/auth/")
    assert status == 200 and json.loads(body)["enabled"] is True


def test_a_saved_label_records_the_tokens_user_not_the_one_the_client_claims(secured, studies):
    url, tokens = secured
    image = _image(studies)
    extras = {"fields": {"params": json.dumps({"user": "someone else"})},
              "files": {"label": truth_path(studies / image).read_bytes()}}
    assert _as(url, tokens["annotator"], "PUT", f"/datastore/label?image={image}&tag=final", extras) == 200
    record = json.loads((studies / "labels" / "final" / image / "v0001.json").read_text())
    assert record["user"] == "annotator-client"
    audit = [json.loads(line) for line in (studies / ".braintumorlabel" / "audit.jsonl").read_text().splitlines()]
    assert audit[-1]["user"] == "annotator-client" and audit[-1]["action"] == "label.save"


def test_the_slicer_client_is_told_to_log_in_and_a_refused_login_is_named(secured):
    url, tokens = secured
    client = ServerClient(url)
    assert client.login_required()
    with pytest.raises(AuthenticationRequired, match="requires a login"):
        client.studies()
    with pytest.raises(AuthenticationRequired, match="login refused"):
        client.login("dr.who", "wrong password")
    assert client.token is None
    client.token = tokens["clinician"]  # a token from the provider, as a browser login gives it
    assert [r.image_id for r in client.studies()]
