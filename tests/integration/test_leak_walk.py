"""The leak walk: with auth on, nothing about a repo, its commits, jobs, datums, logs, lineage, models,
deployments or metrics reaches a caller with no role on it, through any GET route, directly or indirectly.

An admin makes a marked secret (repo, file, content, pipeline, model, deployment); then every GET route of
the OpenAPI document, and the serving GET routes, is called as a stranger (a token, no roles) and as a reader
of another repo, with the secret's names and ids in every path and query parameter. No response body may
hold a marker the request did not itself carry.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.serving_helpers import python_model, wait_for
from tusk.config import Settings
from tusk.root import create_server_app
from tusk.root.server import serve_in_thread
from tusk.sdk import Client
from tusk.services import Services

SECRET_REPO = "secretrepo7f3a"
SECRET_FILE = "plans-5b2d.txt"
SECRET_CONTENT = b"TOPSECRET-9c1e"
SECRET_PIPELINE = "secretpipe4d8b"
SECRET_MODEL = "secretmodel1a6c"
SECRET_DEPLOYMENT = "secretdeploy2e6f"
SECRET_PREDICTOR = "secretpred0b3d"
OPEN_REPO = "open"  # the reader's repo; the secret pipeline reads it too, so lineage crosses the boundary

_MODEL = """
class Model:
    def predict(self, rows):
        return [2 * float(r[0]) for r in rows]
"""
# the serving routes outside the management API's OpenAPI document
_SERVING_GETS = ["/metrics", "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{model}",
                 "/v2/models/{model}/ready", "/v2/models/{model}/versions/{version}",
                 "/v2/models/{model}/versions/{version}/ready"]


@dataclass
class Secret:
    url: str
    tokens: dict[str, str]
    markers: set[str] = field(default_factory=set)  # none of these may reach a stranger
    values: dict[str, list[str]] = field(default_factory=dict)  # parameter name -> secret values to try
    openapi: dict[str, dict[str, dict[str, object]]] = field(default_factory=dict)


@pytest.fixture
def secret(tmp_path: Path) -> Iterator[Secret]:
    settings = Settings.for_home(tmp_path / "server", TUSK_RUNTIME="local", TUSK_USER="server")
    with Client(settings=settings) as operator:
        _, root_token = operator.activate_auth("root")
    app = create_server_app(Services.open(settings), auth=True, poll=0.2, close_services=True)
    with serve_in_thread(app) as url:
        env = {"TUSK_ADDRESS": url, "TUSK_HOME": str(tmp_path / "client"), "TUSK_TOKEN": root_token}
        with Client(settings=Settings.from_env(env=env)) as root:
            tokens = {"root": root_token}
            for user in ("stranger", "reader"):
                _, tokens[user] = root.create_token(user)
            yield _make_secret(root, url, tokens, app.openapi()["paths"])


def _make_secret(root: Client, url: str, tokens: dict[str, str], paths: dict[str, object]) -> Secret:
    s = Secret(url, tokens, openapi=paths)  # type: ignore[arg-type]
    root.create_repo(OPEN_REPO)
    root.put_file(f"{OPEN_REPO}@master:/o.txt", b"open data")
    root.set_role(OPEN_REPO, "reader", "reader")
    root.create_repo(SECRET_REPO)
    root.put_file(f"{SECRET_REPO}@master:/{SECRET_FILE}", SECRET_CONTENT)
    root.create_pipeline({
        "pipeline": {"name": SECRET_PIPELINE},
        "transform": {"cmd": ["sh", "-c", "cat /pfs/secret/* /pfs/open/*; cat /pfs/secret/* > /pfs/out/copy"]},
        "input": {"cross": [{"pfs": {"repo": SECRET_REPO, "glob": "/", "name": "secret"}},
                            {"pfs": {"repo": OPEN_REPO, "glob": "/", "name": "open"}}]}})
    root.put_file(f"{OPEN_REPO}@master:/o2.txt", b"more open data")  # a commit set spanning open and secret
    model_commit = python_model(root, SECRET_MODEL, _MODEL)
    root.create_deployment({"name": SECRET_DEPLOYMENT,
                            "predictors": [{"name": SECRET_PREDICTOR, "model": f"{SECRET_MODEL}@master"}]})
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens['root']}"}, timeout=60) as h:
        wait_for(lambda: h.get(f"/v2/models/{SECRET_DEPLOYMENT}/ready").status_code == 200, 60, "the deployment")
        infer = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP64", "data": [2.0]}]}
        assert h.post(f"/v2/models/{SECRET_DEPLOYMENT}/infer", json=infer).status_code == 200  # metrics now name it
    txn = root.start_transaction()  # a transaction's requests name what they touch: its author's only
    root.start_commit(f"{SECRET_REPO}@master", "drafted")
    root.stop_transaction()
    assert root.get_file(f"{SECRET_PIPELINE}@master:/copy") == SECRET_CONTENT
    commits = [c for repo in (SECRET_REPO, SECRET_PIPELINE, SECRET_MODEL) for c in root.list_commits(repo)]
    jobs = root.list_jobs(SECRET_PIPELINE)
    datums = [d.id for j in jobs for d in root.list_datums(j.id)]
    open_set = root.inspect_commit(f"{OPEN_REPO}@master").global_id
    assert any(c.global_id == open_set for c in commits), "the secret pipeline ran in the open repo's commit set"
    ids = {c.id for c in commits} | {c.global_id for c in commits if c.repo != OPEN_REPO} - {open_set} \
        | {j.id for j in jobs} | set(datums) | {txn.id}
    ids.discard(open_set)
    names = {SECRET_REPO, SECRET_FILE, SECRET_PIPELINE, SECRET_MODEL, SECRET_DEPLOYMENT, SECRET_PREDICTOR}
    s.markers = names | {SECRET_CONTENT.decode()} | ids
    secret_refs = [f"{SECRET_REPO}@master", f"{SECRET_PIPELINE}@master", f"{SECRET_MODEL}@master",
                   f"{SECRET_REPO}@master:/{SECRET_FILE}", f"{OPEN_REPO}@master", f"{OPEN_REPO}@master:/o.txt"]
    secret_refs += [f"{c.repo}@{c.id}" for c in commits[:4]]
    s.values = {
        "repo": [SECRET_REPO, SECRET_PIPELINE, SECRET_MODEL, OPEN_REPO],
        "ref": ["master", commits[0].id, commits[-1].id, *secret_refs],
        "path": [SECRET_FILE, "copy", ""],
        "global_id": [*sorted({c.global_id for c in commits}), open_set],
        "job_id": [j.id for j in jobs], "job": [j.id for j in jobs], "datum_id": datums, "datum": datums,
        "pipeline": [SECRET_PIPELINE], "name": [SECRET_PIPELINE, SECRET_DEPLOYMENT, f"root/{SECRET_REPO}"],
        "model": [SECRET_DEPLOYMENT], "version": [SECRET_PREDICTOR, model_commit],
        "resource": [SECRET_REPO, f"deployment/{SECRET_DEPLOYMENT}"], "user": ["root"],
        "branch": ["master"], "old": secret_refs, "pattern": ["/*", "/**"], "grep": ["TOPSECRET", "open"],
        "recursive": ["true"], "limit": ["5"], "txn": [txn.id, txn.id[:8]],
        # a code tree is named by its content's hash: whoever asks by digest has the code already
        "digest": [str((root.inspect_pipeline(SECRET_PIPELINE).code or {}).get("tree") or ""), "0" * 64],
    }
    # short ids too: a prefix is looked up among what the caller may read, and never answered with a secret id
    for key in ("job_id", "job", "datum_id", "datum", "global_id"):
        s.values[key] = [i[:8] for i in s.values[key][:2]] + s.values[key]
    s.values["ref"] += [f"{c.repo}@{c.id[:8]}" for c in commits[:2]]
    return s


def _requests(s: Secret) -> Iterator[str]:
    """Every GET route, with every combination of secret values in its path parameters, and each query
    parameter set to each secret value in turn (with the first path combination)."""
    routes: list[tuple[str, list[str]]] = [
        (path, [p["name"] for p in op["get"].get("parameters", []) if p["in"] == "query"])  # type: ignore[union-attr, index]
        for path, op in sorted(s.openapi.items()) if "get" in op]
    routes += [(path, []) for path in _SERVING_GETS]
    for path, query in routes:
        params = re.findall(r"\{([^}:]+)(?::path)?\}", path)
        combos = list(itertools.product(*[s.values[p] for p in params]))
        for i, combo in enumerate(combos):
            target = path
            for name, value in zip(params, combo, strict=True):
                target = re.sub(r"\{" + name + r"(:path)?\}", quote(value, safe="/@:") if name == "path"
                                else quote(value, safe="@:"), target)
            yield target
            if i == 0:
                for q in query:
                    for value in s.values.get(q, []):
                        yield f"{target}?{q}={quote(value, safe='@:/')}"


def _leaks(s: Secret, target: str, body: str) -> set[str]:
    """Markers in the body that the request itself did not carry (echoing a caller's own input leaks nothing)."""
    from urllib.parse import unquote

    asked = unquote(target)
    return {m for m in s.markers if m in body and m not in asked}


def test_no_secret_reaches_a_stranger_or_another_repos_reader(secret: Secret) -> None:
    targets = list(_requests(secret))
    walked, answered = 0, {"stranger": 0, "reader": 0}
    found: list[str] = []
    for user in ("stranger", "reader"):
        with httpx.Client(base_url=secret.url, headers={"Authorization": f"Bearer {secret.tokens[user]}"},
                          timeout=60) as h:
            for target in targets:
                r = h.get(target)
                walked += 1
                assert r.status_code < 500, (user, target, r.status_code, r.text)
                answered[user] += r.status_code == 200
                leaked = _leaks(secret, target, r.text)
                if leaked:
                    found.append(f"{user} GET {target} -> {r.status_code}: {sorted(leaked)} in {r.text[:300]}")
    routes = sum("get" in op for op in secret.openapi.values()) + len(_SERVING_GETS)
    print(f"leak walk: {routes} GET routes, {len(targets)} requests per user, {walked} requests in all, "
          f"{answered} answered 200")
    assert not found, "\n".join(found)
    assert routes >= 35 and walked >= 2 * routes
    assert answered["reader"] > answered["stranger"] > 0  # the walk reached real answers, not only refusals
    with httpx.Client(base_url=secret.url, timeout=60) as anon:
        assert anon.get("/metrics").status_code == 401  # metrics need a token with auth on
        ready = anon.get("/v2/health/ready")
        assert ready.status_code == 200 and not _leaks(secret, "", ready.text)
    with httpx.Client(base_url=secret.url, headers={"Authorization": f"Bearer {secret.tokens['root']}"},
                      timeout=60) as root:  # the markers are real: the admin sees them where a stranger did not
        assert SECRET_DEPLOYMENT in root.get("/metrics").text
        assert SECRET_CONTENT in root.get(f"/api/v1/repos/{SECRET_REPO}/commits/master/files/{SECRET_FILE}").content
        assert SECRET_PIPELINE in root.get(f"/api/v1/lineage?ref={OPEN_REPO}@master").text


def test_a_commit_set_shows_only_readable_commits_and_is_missing_when_none_are(secret: Secret) -> None:
    *secret_sets, open_set = secret.values["global_id"]
    with httpx.Client(base_url=secret.url, headers={"Authorization": f"Bearer {secret.tokens['stranger']}"},
                      timeout=60) as stranger:
        missing = stranger.get("/api/v1/commitsets/0123456789abcdef0123456789abcdef")
        for global_id in [*secret_sets, open_set]:
            r = stranger.get(f"/api/v1/commitsets/{global_id}")
            assert r.status_code == 404 and r.json()["error_type"] == "CommitNotFound"
            assert r.json()["error"] == missing.json()["error"].replace("0123456789abcdef0123456789abcdef", global_id)
        r = stranger.get(f"/api/v1/repos/{SECRET_REPO}")  # a secret repo reads exactly like a missing one
        gone = stranger.get("/api/v1/repos/nosuchrepo")
        assert (r.status_code, r.json()["error"]) == (gone.status_code, gone.json()["error"].replace(
            "nosuchrepo", SECRET_REPO))
    with httpx.Client(base_url=secret.url, headers={"Authorization": f"Bearer {secret.tokens['reader']}"},
                      timeout=60) as reader:
        r = reader.get(f"/api/v1/commitsets/{open_set}")
        assert r.status_code == 200 and {c["repo"] for c in r.json()} == {OPEN_REPO}
        assert reader.get(f"/api/v1/jobs?global_id={open_set}").json() == []
