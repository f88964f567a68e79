"""Transactions, as pachctl has them: commits started together share one global id, and a pipeline that reads
them runs once, over all of them; what a transaction cannot batch is refused by name while one is active."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli_runner import Run, cli_runner
from tests.conftest import CLI_BACKENDS, Backend, open_backend
from tusk.config import Settings
from tusk.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, RepoNotFound
from tusk.sdk import Client

CROSS: dict[str, Any] = {
    "pipeline": {"name": "pairs"},
    "transform": {"cmd": ["sh", "-c", "cat /pfs/a/* /pfs/b/* > /pfs/out/seen"]},
    "input": {"cross": [{"pfs": {"repo": "a", "glob": "/"}}, {"pfs": {"repo": "b", "glob": "/"}}]},
}


@pytest.fixture(params=CLI_BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Embedded on both stores, and remote against a server: the transaction lives in the store either way."""
    yield from open_backend(request.param, request, tmp_path)


@pytest.fixture
def client(backend: Backend) -> Iterator[Client]:
    with Client(settings=Settings.from_env(env=backend.env | {"TUSK_RUNTIME": "local"})) as c:
        yield c


def _two_inputs_and_a_cross(client: Client) -> None:
    client.create_repo("a")
    client.create_repo("b")
    client.put_file("a@master:/x", b"a1 ")
    client.put_file("b@master:/y", b"b1 ")
    client.create_pipeline(CROSS)
    assert len(client.list_jobs("pairs")) == 1  # over the first commits


def _inputs(client: Client, job_id: str) -> dict[str, str]:
    return {i["repo"]: i["commit"] for i in client.inspect_job(job_id).input_commits}


def test_commits_started_in_a_transaction_make_one_job_over_both(client: Client) -> None:
    """Pachyderm's example: start commits in a and b in a transaction, finish it, then put files and finish the
    commits at will: one job, once both are finished, over both new commits, with the transaction's id."""
    _two_inputs_and_a_cross(client)
    txn = client.start_transaction()
    ca = client.start_commit("a@master", "new a")
    cb = client.start_commit("b@master", "new b")
    assert ca.state == cb.state == "open" and ca.global_id == cb.global_id == txn.id  # the ids they will have
    with pytest.raises(NotFound):
        client.inspect_commit(f"a@{ca.id}")  # drafted, not run
    assert [r["op"] for r in client.inspect_transaction().requests] == ["start_commit", "start_commit"]
    done = client.finish_transaction()
    assert done.finished and client.active_transaction is None and client.list_transactions() == []
    assert {c.id for c in client.inspect_commit_set(txn.id)} == {ca.id, cb.id}

    client.put_file("a@master:/x", b"a2 ")
    client.put_file("b@master:/y", b"b2 ")
    client.finish_commit(f"a@{ca.id}")
    assert len(client.list_jobs("pairs")) == 1  # no job over a new a and an old b
    client.finish_commit("b@master")
    jobs = client.list_jobs("pairs")
    assert len(jobs) == 2
    job = jobs[0]
    assert job.global_id == txn.id and job.state == "success"
    assert _inputs(client, job.id) == {"a": ca.id, "b": cb.id}
    assert client.get_file("pairs@master:/seen") == b"a2 b2 "
    assert {c.repo for c in client.inspect_commit_set(txn.id)} == {"a", "b", "pairs"}


def test_commits_started_and_finished_in_one_transaction_and_branch_moves(client: Client) -> None:
    _two_inputs_and_a_cross(client)
    old_a, old_b = client.inspect_commit("a@master").id, client.inspect_commit("b@master").id
    client.put_file("a@master:/x", b"a2 ")
    client.put_file("b@master:/y", b"b2 ")
    assert len(client.list_jobs("pairs")) == 3

    with client.transaction() as txn:  # two commits, started and finished together
        client.start_commit("a@master")
        client.start_commit("b@master")
        client.finish_commit("a@master")
        client.finish_commit("b@master")
    jobs = client.list_jobs("pairs")
    assert len(jobs) == 4 and jobs[0].global_id == txn.id and jobs[0].state == "success"

    client.start_transaction()  # a rollback of both inputs is one change too
    client.create_branch("a@master", head=old_a)
    client.create_branch("b@master", head=old_b)
    client.finish_transaction()
    jobs = client.list_jobs("pairs")
    assert len(jobs) == 5
    assert _inputs(client, jobs[0].id) == {"a": old_a, "b": old_b}
    assert client.get_file("pairs@master:/seen") == b"a1 b1 "


def test_delete_transaction_discards_everything(client: Client) -> None:
    client.create_repo("a")
    txn = client.start_transaction()
    client.create_repo("c")
    commit = client.start_commit("c@master")  # in a repo the transaction makes
    client.start_commit("a@master")
    client.create_branch("a@dev")
    assert len(client.inspect_transaction(txn.id).requests) == 4
    client.delete_transaction()
    assert client.active_transaction is None and client.list_transactions() == []
    assert [r.name for r in client.list_repos()] == ["a"]
    assert client.list_commits("a") == [] and [b.name for b in client.list_branches("a")] == []
    with pytest.raises(NotFound, match=commit.id):
        client.inspect_commit_set(commit.id)
    with pytest.raises(NotFound, match="no transaction"):
        client.finish_transaction(txn.id)


def test_unknown_ids_and_dry_run_mistakes_are_clear_errors(client: Client) -> None:
    with pytest.raises(NotFound, match=r"no transaction 0123456789abcdef: it was finished or deleted"):
        client.finish_transaction("0123456789abcdef")
    with pytest.raises(NotFound, match="no transaction"):
        client.delete_transaction("feedfacefeedface")
    with pytest.raises(InvalidArgument, match="no active transaction"):
        client.finish_transaction()
    client.create_repo("a")
    txn = client.start_transaction()
    with pytest.raises(Conflict, match=f"transaction {txn.id} is active"):
        client.start_transaction()
    with pytest.raises(RepoNotFound, match="nope"):  # the dry run: nothing is added
        client.start_commit("nope@master")
    with pytest.raises(AlreadyExists, match="repo 'a' already exists"):
        client.create_repo("a")
    client.create_repo("b")
    with pytest.raises(AlreadyExists, match="repo 'b' already exists"):  # made earlier in this transaction
        client.create_repo("b")
    with pytest.raises(NotFound):
        client.finish_commit("a@master")  # no open commit there, nor in the transaction
    assert [r["op"] for r in client.inspect_transaction().requests] == ["create_repo"]
    assert client.stop_transaction() == txn.id and client.active_transaction is None
    client.create_repo("z")  # runs: no transaction is active
    client.resume_transaction(txn.id)
    client.finish_transaction()
    assert [r.name for r in client.list_repos()] == ["a", "b", "z"]


def test_finish_checks_the_draft_again_and_runs_nothing_when_the_store_changed(client: Client) -> None:
    txn = client.start_transaction()
    client.create_repo("c")
    client.start_commit("c@master")
    client.stop_transaction()
    client.create_repo("c")  # someone else got there first
    with pytest.raises(AlreadyExists, match="repo 'c' already exists"):
        client.finish_transaction(txn.id)
    assert client.list_commits("c") == []  # nothing ran; the transaction stays, to delete
    assert [t.id for t in client.list_transactions()] == [txn.id]
    client.delete_transaction(txn.id)


def test_what_a_transaction_cannot_batch_is_refused_by_name(client: Client) -> None:
    client.create_repo("a")
    client.put_file("a@master:/x", b"1")
    client.start_transaction()
    for call, name in [(lambda: client.put_file("a@master:/y", b"2"), "put file"),
                       (lambda: client.delete_file("a@master:/x"), "delete file"),
                       (lambda: client.delete_pipeline("pairs"), "delete pipeline"),
                       (lambda: client.squash_commit("a@" + "0" * 32), "squash commit")]:
        with pytest.raises(Conflict, match=f"`tusk {name}` cannot run inside transaction"):
            call()
    assert client.list_pipelines() == [] and [f.path for f in client.list_files("a@master:/")] == ["/x"]
    assert client.inspect_transaction().requests == []  # refused, not added either
    assert client.get_file("a@master:/x") == b"1"  # reads run as usual
    client.delete_transaction()


# -- the CLI: pachctl's verbs -------------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite-local", "remote"])
def cli_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from open_backend(request.param, request, tmp_path)


@pytest.fixture
def tusk(cli_backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         capsys: pytest.CaptureFixture[str]) -> Run:
    env = cli_backend.env | {"TUSK_RUNTIME": "local", "TUSK_CONFIG": str(tmp_path / "config.json")}
    return cli_runner(env, monkeypatch, capsys)


def test_pachctl_transaction_verbs(tusk: Run, tmp_path: Path) -> None:
    spec = tmp_path / "pairs.json"
    spec.write_text(json.dumps(CROSS))
    for args in (("create", "repo", "a"), ("create", "repo", "b"), ("create", "pipeline", "-f", str(spec))):
        assert tusk(*args).code == 0
    r = tusk("start", "transaction")
    assert r.code == 0 and r.out.startswith("started new transaction: ")
    txn = r.out.split(": ")[1].strip()
    r = tusk("start", "commit", "a@master")
    assert r.code == 0 and f"Added to transaction: {txn}" in r.err
    commit_a = r.out.strip()  # the id the commit will have
    assert tusk("start", "commit", "b@master").code == 0
    r = tusk("delete", "pipeline", "pairs")
    assert r.code != 0 and "`tusk delete pipeline` cannot run inside transaction" in r.err
    r = tusk("put", "file", "a@master:/x", "-f", str(spec))
    assert r.code != 0 and "`tusk put file` cannot run inside transaction" in r.err
    r = tusk("inspect", "transaction")
    assert r.code == 0 and f"start commit a@master (commit {commit_a})" in r.out and "(active)" in r.out
    r = tusk("list", "transaction", "--json")
    assert [(t["id"], len(t["requests"])) for t in r.json()] == [(txn, 2)]  # type: ignore[union-attr]
    r = tusk("finish", "transaction")
    assert r.code == 0 and f"Completed transaction with 2 requests: {txn}" in r.out
    r = tusk("list", "commit", txn, "--json")
    assert r.code == 0 and {c["repo"] for c in r.json()} == {"a", "b"}  # type: ignore[union-attr]
    assert commit_a in {c["id"] for c in r.json()}  # type: ignore[union-attr]
    assert tusk("put", "file", "a@master:/x", "-f", str(spec)).code == 0  # into the open commit
    assert tusk("put", "file", "b@master:/y", "-f", str(spec)).code == 0
    assert tusk("finish", "commit", "a@master").code == 0
    assert tusk("finish", "commit", "b@master").code == 0
    jobs = tusk("list", "job", "--json").json()
    assert [j["global_id"] for j in jobs][:1] == [txn] and len(jobs) == 2  # type: ignore[index, arg-type]

    r = tusk("start", "transaction")
    second = r.out.split(": ")[1].strip()
    assert tusk("create", "branch", "a@dev").code == 0
    r = tusk("stop", "transaction")
    assert r.code == 0 and second in r.out
    assert tusk("create", "repo", "c").code == 0  # no active transaction: it runs
    assert tusk("resume", "transaction", second).code == 0
    assert tusk("delete", "transaction").code == 0
    r = tusk("finish", "transaction", second)
    assert r.code != 0 and f"no transaction {second}" in r.err
    r = tusk("finish", "transaction")
    assert r.code != 0 and "no active transaction" in r.err
    assert "dev" not in tusk("list", "branch", "a").out


# -- pipelines in a transaction ----------------------------------------------------------------------------------
def test_repos_commits_and_a_pipeline_over_them_land_as_one(client: Client, tmp_path: Path) -> None:
    """`start transaction; create repo a b; start commit a b; create pipeline (cross a b); finish`: the pipeline
    is made with the repos, and its one job runs over both new commits once they are finished."""
    txn = client.start_transaction()
    client.create_repo("a")
    client.create_repo("b")
    client.start_commit("a@master")
    client.start_commit("b@master")
    assert client.create_pipeline(CROSS) == []  # drafted: it exists once the transaction is finished
    assert [r["op"] for r in client.inspect_transaction().requests][-1] == "create_pipeline"
    assert client.list_pipelines() == []
    client.finish_transaction()
    assert [p.name for p in client.list_pipelines()] == ["pairs"]
    client.put_file("a@master:/x", b"a2 ")
    client.put_file("b@master:/y", b"b2 ")
    client.finish_commit("a@master")
    assert [j for j in client.list_jobs("pairs") if j.global_id == txn.id] == []  # b is still open
    client.finish_commit("b@master")
    jobs = [j for j in client.list_jobs("pairs") if j.global_id == txn.id]
    assert len(jobs) == 1 and jobs[0].state == "success", jobs
    assert client.get_file("pairs@master:/seen") == b"a2 b2 "
    # an update in a transaction lands with the rest of it; a spec whose input is missing is refused at once
    client.start_transaction()
    client.update_pipeline(CROSS | {"transform": {"cmd": ["sh", "-c", "cat /pfs/b/* /pfs/a/* > /pfs/out/seen"]}})
    with pytest.raises(RepoNotFound, match="input repo 'nowhere'"):
        client.create_pipeline({"pipeline": {"name": "lost"}, "transform": {"cmd": ["true"]},
                                "input": {"pfs": {"repo": "nowhere", "glob": "/"}}})
    client.finish_transaction()
    assert client.inspect_pipeline("pairs").version == 2
    assert client.get_file("pairs@master:/seen") == b"b2 a2 "



def test_a_transaction_started_without_activating_it_takes_requests_by_id(client: Client) -> None:
    """What the server's shared client does for every request: it keeps no active transaction of its own."""
    info = client.start_transaction(activate=False)
    assert client.active_transaction is None
    client.create_repo("loose")  # not batched: nothing is active
    assert "loose" in [r.name for r in client.list_repos()]
    txn, preview = client.add_transaction_request(info.id, {"op": "create_repo", "name": "drafted"})
    assert txn.id == info.id and [r["op"] for r in txn.requests] == ["create_repo"]
    assert preview is not None and preview.name == "drafted"  # type: ignore[union-attr]
    assert "drafted" not in [r.name for r in client.list_repos()]
    client.finish_transaction(info.id)
    assert "drafted" in [r.name for r in client.list_repos()]
    if client.remote:
        with pytest.raises(InvalidArgument, match="the server's own"):
            client.holding_job_starts()
