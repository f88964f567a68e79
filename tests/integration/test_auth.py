"""Auth in server mode: every route refuses a caller without a token, and each role is refused what it may
not do, with nothing changed by the attempt."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.serving_helpers import python_model, wait_for
from tusk.api.app import OPEN_PATHS, route_table
from tusk.config import Settings
from tusk.errors import AlreadyExists, PermissionDenied, RepoNotFound, Unauthenticated
from tusk.root import create_server_app
from tusk.root.server import serve_in_thread
from tusk.sdk import Client
from tusk.services import Services


@dataclass
class Cluster:
    url: str
    tokens: dict[str, str]
    home: Path
    app_routes: list[dict[str, str]]
    root: Client = None  # type: ignore[assignment]  # set once the cluster is up

    def client(self, user: str | None) -> Client:
        env = {"TUSK_ADDRESS": self.url, "TUSK_HOME": str(self.home / f"client-{user}"), "TUSK_USER": "spoofed"}
        if user is not None:
            env["TUSK_TOKEN"] = self.tokens[user]
        return Client(settings=Settings.from_env(env=env))

    def http(self, user: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    settings = Settings.for_home(tmp_path / "server", TUSK_RUNTIME="local", TUSK_USER="server")
    with Client(settings=settings) as operator:
        _, root_token = operator.activate_auth("root")
        with pytest.raises(Exception, match="already active"):
            operator.activate_auth("root2")
    app = create_server_app(Services.open(settings), auth=True, poll=0.2, close_services=True)
    with serve_in_thread(app) as url:
        tokens = {"root": root_token}
        cluster = Cluster(url, tokens, tmp_path, route_table(app))
        cluster.root = cluster.client("root")
        for user in ("rita", "wally", "olga", "mallory"):
            _, tokens[user] = cluster.root.create_token(user, f"{user}'s token")
        cluster.root.create_repo("data")
        cluster.root.put_file("data@master:/a.txt", b"alpha")
        for user, role in (("rita", "reader"), ("wally", "writer"), ("olga", "owner")):
            cluster.root.set_role("data", user, role)
        try:
            yield cluster
        finally:
            cluster.root.close()


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_every_route_needs_a_token(cluster: Cluster) -> None:
    checked = 0
    with cluster.http(None) as anon:
        for route in cluster.app_routes:
            if route["path"] in OPEN_PATHS:
                continue
            r = anon.request(route["method"], _fill(route["path"]), json={})
            assert r.status_code == 401, (route, r.status_code, r.text)
            assert r.json()["error_type"] == "Unauthenticated"
            checked += 1
        assert checked >= 60  # every API route, not a sample
        bad = httpx.Client(base_url=cluster.url, headers={"Authorization": "Bearer tusk_nope_nope"})
        assert bad.get("/api/v1/repos").status_code == 401
        assert anon.get("/api/v1/health").status_code == 200  # health checks stay open
        assert anon.post("/v2/models/m/infer", json={}).status_code == 401  # inference too needs a token
    with cluster.client(None) as nobody, pytest.raises(Unauthenticated, match="requires a token"):
        nobody.list_repos()


def test_a_reader_can_read_but_every_write_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    head = cluster.root.inspect_commit("data@master").id
    with cluster.client("rita") as rita:
        assert rita.whoami()["user"] == "rita"  # the token decides who you are, not TUSK_USER
        assert rita.get_file("data@master:/a.txt") == b"alpha"
        assert [r.name for r in rita.list_repos()] == ["data"]
        spec = tmp_path / "p.json"
        spec.write_text('{"pipeline": {"name": "copy"}, "transform": {"cmd": ["cp", "-r", "/pfs/data", "/pfs/out"]},'
                        ' "input": {"pfs": {"repo": "data", "glob": "/"}}}')
        forbidden = {
            "put file": lambda: rita.put_file("data@master:/b.txt", b"b"),
            "modify": lambda: rita.modify("data@master").land(),
            "delete file": lambda: rita.delete_file("data@master:/a.txt"),
            "copy file": lambda: rita.copy_file("data@master:/a.txt", "data@master:/c.txt"),
            "start commit": lambda: rita.start_commit("data@master"),
            "finish commit": lambda: rita.finish_commit("data@master"),
            "squash commit": lambda: rita.squash_commit(f"data@{head}"),
            "delete commit": lambda: rita.delete_commit(f"data@{head}"),
            "create branch": lambda: rita.create_branch("data@dev", head="master"),
            "delete branch": lambda: rita.delete_branch("data@master"),
            "delete repo": lambda: rita.delete_repo("data", force=True),
            "grant herself": lambda: rita.set_role("data", "rita", "owner"),
            "admin token": lambda: rita.create_token("root"),
            "fsck": lambda: rita.fsck(),
            "gc": lambda: rita.gc(grace=0),
            "gc dry run": lambda: rita.gc(dry_run=True),
            "run jobs": lambda: rita.run_pending_jobs(),
            "tick crons": lambda: rita.tick_due_crons(),
            "promote": lambda: rita.promote_model("data@master", "production"),
            "list others' tokens": lambda: rita.list_tokens("root"),
        }
        for what, attempt in forbidden.items():
            with pytest.raises(PermissionDenied):
                attempt()
                pytest.fail(f"a reader could {what}")
        # a pipeline reading data is fine to create: its output repo is rita's own
        (info,) = rita.create_pipeline(spec)
        assert info.name == "copy" and rita.get_file("copy@master:/data/a.txt") == b"alpha"
    assert cluster.root.inspect_commit("data@master").id == head  # nothing changed
    assert [b.name for b in cluster.root.list_branches("data")] == ["master"]


def test_a_stranger_cannot_see_a_repo_and_roles_are_granted_by_owners(cluster: Cluster) -> None:
    with cluster.client("mallory") as mallory:
        assert mallory.list_repos() == []
        with pytest.raises(RepoNotFound):
            mallory.get_file("data@master:/a.txt")
        with pytest.raises(RepoNotFound):
            mallory.list_commits("data@master")
        with pytest.raises(PermissionDenied):
            mallory.set_role("data", "mallory", "reader")
        mine = mallory.create_repo("mine")  # anyone may create a repo, and owns it
        assert mine.name == "mine"
        mallory.set_role("mine", "rita", "writer")
    with cluster.client("olga") as olga:  # an owner of data grants and removes roles on it
        olga.set_role("data", "mallory", "reader")
        with cluster.client("mallory") as mallory:
            assert mallory.get_file("data@master:/a.txt") == b"alpha"
        olga.set_role("data", "mallory", "none")
        with pytest.raises(PermissionDenied):
            olga.set_role("*", "olga", "admin")
    with cluster.client("rita") as rita:
        rita.put_file("mine@master:/r.txt", b"from rita")
        assert {r.name for r in rita.list_repos()} == {"data", "mine"}


def test_tokens_can_be_revoked_and_expire(cluster: Cluster) -> None:
    with cluster.client("wally") as wally:
        info, token = wally.create_token(description="ci", ttl_seconds=3600)
        cluster.tokens["wally-ci"] = token
        with cluster.client("wally-ci") as ci:
            assert ci.whoami()["user"] == "wally"
            ci.put_file("data@master:/w.txt", b"w")
        with pytest.raises(PermissionDenied):
            cluster.client("rita").revoke_token(info.id)
        wally.revoke_token(info.id)
        with cluster.client("wally-ci") as ci, pytest.raises(Unauthenticated, match="revoked"):
            ci.whoami()
        _, short = wally.create_token(ttl_seconds=0.5)
        cluster.tokens["short"] = short
        wait_for(lambda: _rejected(cluster, "short"), timeout=10)


def _rejected(cluster: Cluster, user: str) -> bool:
    with cluster.http(user) as h:
        return h.get("/api/v1/auth/whoami").status_code == 401


def test_a_pipeline_runs_with_the_rights_of_its_creator(cluster: Cluster, tmp_path: Path) -> None:
    spec = {"pipeline": {"name": "upper"}, "transform": {"cmd": ["sh", "-c", "tr a-z A-Z < $data > /pfs/out/u"]},
            "input": {"pfs": {"repo": "data", "glob": "/a.txt"}}}
    with cluster.client("wally") as wally:
        wally.create_pipeline(spec)
        assert wally.get_file("upper@master:/u") == b"ALPHA"
        cluster.root.set_role("data", "wally", "none")  # wally may no longer read data...
        cluster.root.put_file("data@master:/a.txt", b"beta")  # ...so the job this triggers fails
    (job, *_) = cluster.root.list_jobs("upper")
    assert job.state == "failure" and "creator wally, who is not a reader of data" in (job.reason or "")
    assert cluster.root.get_file("upper@master:/u") == b"ALPHA"  # the branch keeps the last good output


_DOUBLER = """
class Model:
    def predict(self, rows):
        return [2 * float(r[0]) for r in rows]
"""


def test_deployments_and_inference_check_roles(cluster: Cluster) -> None:
    python_model(cluster.root, "doubler", _DOUBLER)
    cluster.root.create_deployment({"name": "d", "predictors": [{"name": "main", "model": "doubler@master"}]})
    infer = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP64", "data": [2.0]}]}
    with cluster.http("root") as root_http:  # the server picks the deployment up within a poll
        wait_for(lambda: root_http.get("/v2/models/d/ready").status_code == 200, timeout=60)
    with cluster.http("rita") as rita_http:
        r = rita_http.post("/v2/models/d/infer", json=infer)
        assert r.status_code == 403 and "not a reader of deployment/d" in r.json()["error"]
        assert rita_http.get("/v2/models/d").status_code == 403
        cluster.root.set_role("deployment/d", "rita", "reader")
        r = rita_http.post("/v2/models/d/infer", json=infer)
        assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [4.0]
    with cluster.client("rita") as rita:
        assert [d.name for d in rita.list_deployments()] == ["d"]
        with pytest.raises(PermissionDenied):
            rita.rollout("d", {"main": 100})
        with pytest.raises(PermissionDenied):
            rita.delete_deployment("d")
        with pytest.raises(RepoNotFound):  # she cannot read the model repo, so she cannot deploy it
            rita.create_deployment({"name": "mine", "predictors": [{"name": "m", "model": "doubler@master"}]})
    with cluster.client("mallory") as mallory:
        assert mallory.list_deployments() == []
        with pytest.raises(PermissionDenied):
            mallory.inspect_deployment("d")
        with pytest.raises(PermissionDenied):
            mallory.deployment_history("d")


def test_a_deployment_never_logs_into_a_repo_its_deployer_cannot_write(cluster: Cluster) -> None:
    with cluster.client("rita") as rita:  # rita reads data, and owns a model of her own
        python_model(rita, "ritamodel", _DOUBLER)
        heads = {b.name: b.head for b in cluster.root.list_branches("data")}
        with pytest.raises(PermissionDenied, match="rita is not a writer of data"):
            rita.create_deployment({"name": "sneaky", "predictors": [{"name": "m", "model": "ritamodel@master"}],
                                    "logging": {"repo": "data"}})
        assert [d.name for d in cluster.root.list_deployments()] == []
        assert {b.name: b.head for b in cluster.root.list_branches("data")} == heads
        rita.create_deployment({"name": "mine", "predictors": [{"name": "m", "model": "ritamodel@master"}]})
    assert [(b.user, b.role) for b in cluster.root.list_roles("mine-requests")] == [("rita", "owner")]


def test_a_writer_is_refused_what_needs_an_owner(cluster: Cluster, tmp_path: Path) -> None:
    with cluster.client("olga") as olga:  # olga (owner of data) makes a pipeline: she owns its output
        olga.create_pipeline({"pipeline": {"name": "olgas"},
                              "transform": {"cmd": ["cp", "-r", "/pfs/data", "/pfs/out"]},
                              "input": {"pfs": {"repo": "data", "glob": "/"}}})
    with cluster.client("wally") as wally:
        wally.put_file("data@master:/w.txt", b"wally was here")  # a writer writes...
        wally.create_branch("data@dev", head="master")
        owner_only = {
            "delete the repo": lambda: wally.delete_repo("data", force=True),
            "grant a role": lambda: wally.set_role("data", "mallory", "reader"),
            "delete another's pipeline": lambda: wally.delete_pipeline("olgas"),
            "stop another's pipeline": lambda: wally.stop_pipeline("olgas"),
            "rerun another's pipeline": lambda: wally.rerun_pipeline("olgas"),
            "update another's pipeline": lambda: wally.update_pipeline(
                {"pipeline": {"name": "olgas"}, "transform": {"cmd": ["true"]},
                 "input": {"pfs": {"repo": "data", "glob": "/"}}}),
            "write to another's output": lambda: wally.put_file("olgas@master:/x", b"x"),
            "revoke another's token": lambda: wally.revoke_token(cluster.root.list_tokens("olga")[0].id),
        }
        for what, attempt in owner_only.items():
            with pytest.raises((PermissionDenied, RepoNotFound)):
                attempt()
                pytest.fail(f"a writer could {what}")
    assert cluster.root.inspect_pipeline("olgas").state == "running"
    assert cluster.root.inspect_pipeline("olgas").version == 1


def test_a_pipeline_never_takes_over_a_repo_its_creator_does_not_own(cluster: Cluster) -> None:
    """A reader of data once got owner of it by naming it as a cron input's repo."""
    before = cluster.root.list_roles("data")
    tick = {"name": "tick", "spec": "@every 60s"}
    with cluster.client("rita") as rita:
        for spec, says in (
            ({"pipeline": {"name": "ticker"}, "input": {"cron": tick | {"repo": "data"}}}, "repo 'data' already"),
            ({"pipeline": {"name": "data"}, "input": {"cron": tick}}, "repo 'data' already"),
            ({"pipeline": {"name": "data_tick"}, "input": {"pfs": {"repo": "data", "glob": "/"}}}, None),
        ):
            if says is None:  # rita's own pipeline: an update may not point its cron at data either
                rita.create_pipeline(spec | {"transform": {"cmd": ["true"]}})
                spec = spec | {"input": {"cron": tick | {"repo": "data"}}}
                with pytest.raises(AlreadyExists, match="repo 'data' already exists"):
                    rita.update_pipeline(spec | {"transform": {"cmd": ["true"]}})
                continue
            with pytest.raises(AlreadyExists, match=says):
                rita.create_pipeline(spec | {"transform": {"cmd": ["true"]}})
        with pytest.raises(PermissionDenied):
            rita.put_file("data@master:/owned.txt", b"mine now")
    assert cluster.root.list_roles("data") == before
    assert "ticker" not in {r.name for r in cluster.root.list_repos()}
    assert {p.name for p in cluster.root.list_pipelines()} == {"data_tick"}


def test_grants_end_with_what_they_were_on(cluster: Cluster) -> None:
    """A reader of a deleted repo could read a new repo of the same name, someone else's."""
    spec = {"pipeline": {"name": "shared"}, "transform": {"cmd": ["true"]},
            "input": {"pfs": {"repo": "data", "glob": "/"}}}
    with cluster.client("olga") as olga:
        olga.create_repo("old")
        olga.set_role("old", "rita", "reader")
        olga.delete_repo("old")
        olga.create_pipeline(spec)  # a pipeline's output repo, and a deployment, likewise
        olga.set_role("shared", "rita", "reader")
        olga.delete_pipeline("shared")
        olga.put_file("data@master:/model.py", b"")
    with cluster.client("mallory") as mallory:
        mallory.create_repo("old")
        mallory.put_file("old@master:/secret", b"mallory's")
        mallory.create_repo("shared")
        mallory.put_file("shared@master:/secret", b"mallory's")
    with cluster.client("rita") as rita:
        for repo in ("old", "shared"):
            with pytest.raises(RepoNotFound):
                rita.get_file(f"{repo}@master:/secret")
    assert {(b.resource, b.user) for b in cluster.root.list_roles()} >= {("old", "mallory"), ("shared", "mallory")}
    assert not [b for b in cluster.root.list_roles() if b.user == "rita" and b.resource in ("old", "shared")]
