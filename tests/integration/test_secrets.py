"""Pachyderm's ``transform.secrets``: secrets made from Kubernetes Secret manifests (``tusk secret create``),
read by pipelines as variables (``env_var``) and files (``mount_path``), and never shown anywhere: not in
``tusk logs``, job, datum, pipeline or commit records, the API's JSON, errors, or object storage."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.cli_runner import cli_runner
from tests.conftest import Backend, open_backend
from tusk.config import Settings
from tusk.errors import AlreadyExists, CommitNotFound, Conflict, InvalidArgument, SecretNotFound
from tusk.pipelines.runtimes import BwrapRuntime
from tusk.root import create_server_app
from tusk.root.server import serve_in_thread
from tusk.sdk import Client
from tusk.services import Services
from tusk.storage.metadata import SecretRow

ACCESS = "AKIA-TUSK-ACCESS-7f3a9c"  # the values: none may show anywhere but in the datum
CERT = "-----BEGIN CERTIFICATE-----\nMIIB-tusk-cert-body-42\n-----END CERTIFICATE-----\n"
TLS_KEY = "tusk-private-key-9b1e"
VALUES = (ACCESS, "MIIB-tusk-cert-body-42", TLS_KEY)

S3_CREDS = {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s3-creds"},
            "data": {"access": base64.b64encode(ACCESS.encode()).decode()}}
TLS = {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "tls"}, "type": "kubernetes.io/tls",
       "stringData": {"tls.crt": CERT, "tls.key": TLS_KEY}}


@pytest.fixture(autouse=True)
def _code_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Specs given as dicts take the working directory as their code: an empty one."""
    (tmp_path / "code").mkdir()
    monkeypatch.chdir(tmp_path / "code")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _spec(name: str = "creds", mount: bool = True, repo: str = "data") -> dict[str, Any]:
    """A spec as Pachyderm's docs write one: the code checks the values by hash, so the spec holds none; it
    prints the variable too, to show the log masks it."""
    check = (f'[ "$(printf %s "$AWS_ACCESS_KEY_ID" | sha256sum | cut -c1-64)" = "{_sha(ACCESS)}" ] && '
             'echo env-ok >> /pfs/out/result; echo "the key is $AWS_ACCESS_KEY_ID"')
    secrets: list[dict[str, str]] = [{"name": "s3-creds", "key": "access", "env_var": "AWS_ACCESS_KEY_ID"}]
    if mount:
        secrets.append({"name": "tls", "mount_path": "/var/secrets/tls"})
        check += (f'; [ "$(cat /var/secrets/tls/tls.crt | sha256sum | cut -c1-64)" = "{_sha(CERT)}" ] && '
                  'echo mount-ok >> /pfs/out/result; cat /var/secrets/tls/tls.key; '
                  'touch /var/secrets/tls/x 2>/dev/null || echo read-only >> /pfs/out/result')
    return {"pipeline": {"name": name},
            "transform": {"cmd": ["sh", "-c", check], "env": {"AWS_ACCESS_KEY_ID": "from-env"},
                          "secrets": secrets},
            "input": {"pfs": {"repo": repo, "glob": "/*"}}}


def _nowhere(*texts: str) -> None:
    for text in texts:
        for value in VALUES:
            assert value not in text


def _records(c: Client, pipeline: str) -> str:
    """Everything Tusk keeps about a pipeline's runs, as JSON: pipeline, jobs, datums, output provenance."""
    jobs = c.list_jobs(pipeline)
    parts: list[Any] = [c.inspect_pipeline(pipeline).to_dict(), c.pipeline_versions(pipeline)]
    for job in jobs:
        parts += [c.inspect_job(job.id).to_dict(), [d.to_dict() for d in c.list_datums(job.id)]]
    with contextlib.suppress(CommitNotFound):  # (a failed job lands no output commit)
        parts.append(c.inspect_commit(f"{pipeline}@master").to_dict())
    parts.append([s.to_dict() for s in c.list_secrets()])
    return json.dumps(parts, default=str)


def test_env_var_and_mount_path_as_pachyderm_spells_them(client: Client, backend: Backend) -> None:
    if not BwrapRuntime.available():
        pytest.skip("mount_path needs the bwrap sandbox")
    created = client.create_secret(S3_CREDS)
    assert (created.name, created.keys, created.created_by) == ("s3-creds", ["access"], "tester")
    client.create_secret(TLS)
    client.create_repo("data")
    client.put_file("data@master:/a.txt", b"a")
    [info] = client.create_pipeline(_spec())
    assert info.last_job_state == "success", client.logs("creds")
    # the secret's variable wins over transform.env's; the files are there, read-only
    assert client.get_file("creds@master:/result").decode().split() == ["env-ok", "mount-ok", "read-only"]
    logs = "\n".join(line for _, _, line in client.logs("creds"))
    assert "the key is [secret s3-creds.access]" in logs and "[secret tls.tls.key]" in logs
    _nowhere(logs, _records(client, "creds"))
    assert client.inspect_secret("tls").pipelines == ["creds"]
    # the store holds no value in the clear: not in the database row, not among the objects
    with Client(settings=backend.settings()) as direct, direct.services.ctx.db.read() as s:
        rows = s.scalars(select(SecretRow)).all()
        assert {r.name for r in rows} == {"s3-creds", "tls"}
        for row in rows:
            _nowhere(row.sealed.decode(errors="replace"), row.keys)
        objects = direct.services.ctx.objects
        for key in objects.list(""):
            _nowhere(objects.get(key).decode(errors="replace"))
    # nothing of the datum's secret files is left on the worker
    scratch = Path(backend.env["TUSK_HOME"]) / "scratch"
    assert not [p for p in scratch.rglob("*") if "secrets" in p.parts]


def test_delete_is_refused_while_a_pipeline_uses_the_secret(client: Client) -> None:
    client.create_secret(S3_CREDS)
    client.create_repo("data")
    client.create_pipeline(_spec(mount=False))
    with pytest.raises(Conflict, match="used by pipeline creds"):
        client.delete_secret("s3-creds")
    with pytest.raises(AlreadyExists, match="delete it first"):
        client.create_secret(S3_CREDS)
    client.delete_pipeline("creds")
    client.delete_secret("s3-creds")
    assert client.list_secrets() == []
    with pytest.raises(SecretNotFound):
        client.inspect_secret("s3-creds")


def test_a_pipeline_naming_a_missing_secret_or_key_is_refused(tmp_path: Path) -> None:
    with Client(home=tmp_path / "home") as c:
        c.create_repo("data")
        with pytest.raises(SecretNotFound, match=r"transform.secrets\[0\]: secret 's3-creds' not found"):
            c.create_pipeline(_spec(mount=False))
        c.create_secret(name="s3-creds", literals={"other": "x"})
        with pytest.raises(InvalidArgument, match="has no key 'access' \\(its keys: other\\)"):
            c.create_pipeline(_spec(mount=False))
        assert c.list_pipelines() == []


@pytest.mark.parametrize(("manifest", "error"), [
    ({"kind": "ConfigMap", "metadata": {"name": "x"}}, "not Secret"),
    ({"kind": "Secret", "metadata": {"name": "Bad_Name"}}, "metadata.name must be a Kubernetes name"),
    ({"kind": "Secret", "metadata": {"name": "x"}, "data": {"k": ACCESS}}, "data.k is not base64"),
    ({"kind": "Secret", "metadata": {"name": "x"}, "stringData": {"..": ACCESS}}, "key '..' must be"),
    ({"kind": "Secret", "metadata": {"name": "x"}, "stringData": {"k": 12345}}, "must be a string"),
    ({"kind": "Secret", "metadata": {"name": "x"}, "sringData": {"k": ACCESS}}, "unknown field 'sringData'"),
])
def test_bad_manifests_are_refused_without_their_values(tmp_path: Path, manifest: dict[str, Any],
                                                        error: str) -> None:
    with Client(home=tmp_path / "home") as c, pytest.raises(InvalidArgument) as caught:
        c.create_secret(manifest)
    assert error in str(caught.value)
    _nowhere(str(caught.value))


def test_bad_secret_refs_in_a_spec_name_the_field(tmp_path: Path) -> None:
    with Client(home=tmp_path / "home") as c:
        c.create_repo("data")
        spec = _spec(mount=False)
        spec["transform"]["secrets"] = [{"name": "s3-creds", "env_var": "X"}]
        with pytest.raises(InvalidArgument, match=r"transform.secrets.0: .*env_var X needs the key"):
            c.create_pipeline(spec)
        spec["transform"]["secrets"] = [{"name": "tls", "mount_path": "/pfs/tls"}]
        with pytest.raises(InvalidArgument, match="mount_path '/pfs/tls' must be an absolute directory outside"):
            c.create_pipeline(spec)


def test_the_local_runtime_refuses_mount_path_and_yaml_manifests_work(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (tmp_path / "tls.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: tls\nstringData:\n  tls.crt: |\n"
        + "".join(f"    {line}\n" for line in CERT.splitlines()) + f"  tls.key: {TLS_KEY}\n")
    with Client(settings=Settings.for_home(home, TUSK_RUNTIME="local")) as c:
        assert c.create_secret(tmp_path / "tls.yaml").keys == ["tls.crt", "tls.key"]
        c.create_secret(S3_CREDS)
        c.create_repo("data")
        c.put_file("data@master:/a.txt", b"a")
        [info] = c.create_pipeline(_spec())
        assert info.last_job_state == "failure"
        [job] = c.list_jobs("creds")
        assert "mount_path (/var/secrets/tls) needs a runtime that mounts files" in (job.reason or "")
        _nowhere(_records(c, "creds"))


def test_a_key_file_of_another_store_cannot_open_the_secrets(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Client(settings=Settings.for_home(home, TUSK_RUNTIME="local")) as c:
        c.create_secret(S3_CREDS)
        c.create_repo("data")
    key = home / "keys" / "secrets.key"
    assert key.stat().st_mode & 0o077 == 0
    key.write_bytes(os.urandom(32))
    with Client(settings=Settings.for_home(home, TUSK_RUNTIME="local")) as c:
        c.create_pipeline(_spec(mount=False))
        c.put_file("data@master:/a.txt", b"a")
        job = c.list_jobs("creds")[0]
        assert job.state == "failure" and "cannot be opened with the key" in (job.reason or "")


def test_cli_verbs_in_both_orders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    tusk = cli_runner({"TUSK_HOME": str(tmp_path / "home"), "TUSK_USER": "tester", "TUSK_RUNTIME": "local"},
                      monkeypatch, capsys)
    manifest = tmp_path / "secret.json"
    manifest.write_text(json.dumps(S3_CREDS))
    assert tusk("create", "secret", "-f", str(manifest)).code == 0
    (tmp_path / "key.pem").write_text(TLS_KEY)
    r = tusk("secret", "create", "tls", "--from-literal", f"tls.crt={CERT}", "--from-file",
             f"tls.key={tmp_path / 'key.pem'}")
    assert r.code == 0 and "keys: tls.crt, tls.key" in r.out
    listed = tusk("list", "secret", "--json").json()
    assert [s["name"] for s in listed] == ["s3-creds", "tls"]  # type: ignore[index]
    shown = tusk("inspect", "secret", "tls")
    assert shown.code == 0 and "tls.crt,tls.key" in shown.out
    missing = tusk("secret", "inspect", "nope")
    assert missing.code == 2 and "secret 'nope' not found" in missing.err
    assert tusk("delete", "secret", "tls").code == 0
    _nowhere(r.out, r.err, json.dumps(listed), shown.out)


# -- a server: the remote client, and who may use a secret ------------------------------------------------------


@pytest.fixture
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from open_backend("remote", request, tmp_path)


def test_remote_client_and_cli_through_the_api(remote: Backend, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with remote.client() as c:
        assert c.remote
        assert c.create_secret(S3_CREDS).keys == ["access"]
        c.create_repo("data")
        c.put_file("data@master:/a.txt", b"a")
        c.create_pipeline(_spec(mount=False))
        assert c.inspect_pipeline("creds").last_job_state == "success"
        assert c.get_file("creds@master:/result") == b"env-ok\n"
        logs = "\n".join(line for _, _, line in c.logs("creds"))
        assert "the key is [secret s3-creds.access]" in logs
        _nowhere(logs, _records(c, "creds"))
        url = remote.env["TUSK_ADDRESS"]
        job = c.list_jobs("creds")[0].id
        with httpx.Client(base_url=url, headers={"X-Tusk-User": "tester"}) as http:
            for path in ("/api/v1/secrets", "/api/v1/secrets/s3-creds", "/api/v1/pipelines/creds",
                         f"/api/v1/jobs/{job}", f"/api/v1/jobs/{job}/datums", "/api/v1/repos/creds/commits/master"):
                r = http.get(path)
                assert r.status_code == 200, (path, r.text)
                _nowhere(r.text)
            assert http.get("/api/v1/secrets/s3-creds").json()["keys"] == ["access"]
        with pytest.raises(Conflict, match="used by pipeline creds"):
            c.delete_secret("s3-creds")
    tusk = cli_runner(remote.env, monkeypatch, capsys)
    for args in (("logs", "-p", "creds"), ("inspect", "pipeline", "creds", "--json"), ("list", "job", "--json"),
                 ("inspect", "secret", "s3-creds", "--json")):
        r = tusk(*args)
        assert r.code == 0, (args, r.err)
        _nowhere(r.out, r.err)
    assert "[secret s3-creds.access]" in tusk("logs", "-p", "creds").out
    manifest = tmp_path / "tls.json"
    manifest.write_text(json.dumps(TLS))
    assert tusk("create", "secret", "-f", str(manifest)).code == 0
    assert [s["name"] for s in tusk("list", "secret", "--json").json()] == ["s3-creds", "tls"]  # type: ignore[index]
    assert tusk("delete", "secret", "tls").code == 0
    assert tusk("inspect", "secret", "tls").code == 2


@dataclass
class Cluster:
    url: str
    tokens: dict[str, str]
    home: Path

    def client(self, user: str) -> Client:
        env = {"TUSK_ADDRESS": self.url, "TUSK_HOME": str(self.home / f"client-{user}"), "TUSK_USER": "spoofed",
               "TUSK_TOKEN": self.tokens[user]}
        return Client(settings=Settings.from_env(env=env))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    settings = Settings.for_home(tmp_path / "server", TUSK_RUNTIME="local", TUSK_USER="server")
    with Client(settings=settings) as operator:
        _, root_token = operator.activate_auth("root")
    app = create_server_app(Services.open(settings), auth=True, poll=0.2, close_services=True)
    with serve_in_thread(app) as url:
        cluster = Cluster(url, {"root": root_token}, tmp_path)
        with cluster.client("root") as root:
            for user in ("alice", "bob"):
                _, cluster.tokens[user] = root.create_token(user)
            root.create_repo("data")
            root.put_file("data@master:/a.txt", b"a")
            for user in ("alice", "bob"):
                root.set_role("data", user, "reader")
        yield cluster


def test_a_new_pipelines_first_job_waits_until_its_creator_owns_the_output(cluster: Cluster,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The API grants the creator the output repo after creating the pipeline; a scheduler that took the first
    job in between refused it (the creator was not yet a writer of it) and the job failed. Seen under load."""
    from tusk.api.routes import pipelines as routes

    grant = routes.own_pipeline_repos
    taken: list[str] = []

    def scheduler_first(caller: Any, spec: Any) -> None:  # the scheduler's thread, at the worst moment
        taken.extend(j.id for j in caller.ops.services.jobs.run_pending())
        grant(caller, spec)

    monkeypatch.setattr(routes, "own_pipeline_repos", scheduler_first)
    with cluster.client("alice") as alice:
        alice.create_pipeline({"pipeline": {"name": "copy"}, "input": {"pfs": {"repo": "data", "glob": "/*"}},
                               "transform": {"cmd": ["sh", "-c", "cp /pfs/data/* /pfs/out/"]}})
        assert taken == []  # no job to take yet: it is created once alice owns the output repo
        job = alice.list_jobs("copy")[0]
        assert job.state == "success", job.error
        assert alice.get_file("copy@master:/a.txt") == b"a"


def test_a_secret_is_its_creators_and_the_admins(cluster: Cluster) -> None:
    with cluster.client("alice") as alice, cluster.client("bob") as bob, cluster.client("root") as root:
        assert alice.create_secret(S3_CREDS).created_by == "alice"
        assert [s.name for s in bob.list_secrets()] == []
        assert [s.name for s in root.list_secrets()] == ["s3-creds"]  # an admin sees every secret
        with pytest.raises(SecretNotFound, match="not found, or bob may not use it") as hidden:
            bob.inspect_secret("s3-creds")
        with pytest.raises(SecretNotFound) as missing:
            bob.inspect_secret("no-such-secret")
        assert str(hidden.value).replace("s3-creds", "X") == str(missing.value).replace("no-such-secret", "X")
        with pytest.raises(SecretNotFound, match="bob may not use it"):
            bob.delete_secret("s3-creds")
        # a pipeline may name a secret only if its creator may use it
        with pytest.raises(SecretNotFound, match="bob may not use it"):
            bob.create_pipeline(_spec(name="stolen", mount=False))
        assert bob.list_pipelines() == []
        alice.create_pipeline(_spec(mount=False))
        job = alice.list_jobs("creds")[0]
        assert job.state == "success", job.error
        # bob, made an owner of alice's pipeline, still may not update it (its code could print her secret)
        root.set_role("creds", "bob", "owner")
        with pytest.raises(SecretNotFound, match="bob may not use it"):
            bob.update_pipeline(_spec(mount=False))
        # checked again when each job starts: the creator's rights as they are then
        root.set_role("*", "bob", "admin")
        bob.create_pipeline(_spec(name="audit", mount=False))
        assert bob.inspect_pipeline("audit").last_job_state == "success"
        root.set_role("*", "bob", None)
        root.put_file("data@master:/b.txt", b"b")
        job = root.list_jobs("audit")[0]
        assert job.state == "failure" and "who may not use secret s3-creds" in (job.reason or "")
        _nowhere(_records(root, "creds"), json.dumps([j.to_dict() for j in root.list_jobs("audit")], default=str))


def test_extract_leaves_secrets_out_and_restore_keeps_its_own(tmp_path: Path) -> None:
    with Client(settings=Settings.for_home(tmp_path / "a", TUSK_RUNTIME="local")) as a:
        a.create_secret(S3_CREDS)
        a.create_repo("data")
        a.create_pipeline(_spec(mount=False))
        a.extract(tmp_path / "store.tar")
    _nowhere((tmp_path / "store.tar").read_bytes().decode(errors="replace"))
    with Client(settings=Settings.for_home(tmp_path / "b", TUSK_RUNTIME="local")) as b:
        report = b.restore(tmp_path / "store.tar")
        assert "secrets" not in report.tables and b.list_secrets() == []
        assert [p.name for p in b.list_pipelines()] == ["creds"]
        b.put_file("data@master:/a.txt", b"a")  # its job says what is missing, until the secret is made again
        assert "secret 's3-creds' not found" in (b.list_jobs("creds")[0].reason or "")
        b.create_secret(S3_CREDS)
        b.rerun_pipeline("creds")
        assert b.inspect_pipeline("creds").last_job_state == "success"
