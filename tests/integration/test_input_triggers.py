"""``input.pfs.trigger``: a pipeline runs on an input only when its trigger fires, as in Pachyderm.

The specs are written as Pachyderm's documentation writes them. The input's branch becomes a trigger branch of
the input repo (``<pipeline>-trigger-<n>`` unless ``pfs.branch`` names one) that follows the trigger's branch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLI_BACKENDS, Backend, open_backend
from tusk import Client
from tusk.config import Settings
from tusk.errors import CommitNotFound, Conflict, InvalidArgument, RepoNotFound
from tusk.pipelines.input_triggers import resolve_input_triggers
from tusk.pipelines.spec import parse_spec
from tusk.versioning.records import BranchInfo
from tusk.versioning.triggers import BranchTrigger


@pytest.fixture(params=CLI_BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Embedded on both stores, and remote against a server: the same specs, the same branches."""
    yield from open_backend(request.param, request, tmp_path)


@pytest.fixture
def tc(backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    """A client whose pipelines run as plain local processes (a server's run so already), from an empty
    directory: a dict spec's code is the current directory's."""
    (tmp_path / "code").mkdir()
    monkeypatch.chdir(tmp_path / "code")
    c = Client(settings=Settings.from_env(env=backend.env | {"TUSK_RUNTIME": "local"}))
    try:
        yield c
    finally:
        c.close()


def copy(inp: dict[str, Any], name: str = "copy") -> dict[str, Any]:
    return {"pipeline": {"name": name}, "transform": {"cmd": ["sh"], "stdin": ["cp -r /pfs/data/* /pfs/out/"]},
            "input": inp}


def branches(c: Client, repo: str) -> dict[str, BranchInfo]:
    return {b.name: b for b in c.list_branches(repo)}


def outputs(c: Client, pipeline: str = "copy") -> list[str]:
    """The output repo's files; none while no job has had datums (its branch has no commit yet)."""
    try:
        return [f.path for f in c.list_files(f"{pipeline}@master")]
    except CommitNotFound:
        return []


def test_a_commits_trigger_runs_the_pipeline_on_the_second_commit_over_both(tc: Client) -> None:
    tc.create_repo("data")
    tc.create_pipeline(copy({"pfs": {"repo": "data", "glob": "/*", "trigger": {"branch": "master", "commits": 2}}}))
    trigger = branches(tc, "data")["copy-trigger-1"]  # pachd's name for it
    assert (trigger.head, trigger.trigger) == (None, "master: 2 commits")
    stored = tc.inspect_pipeline("copy").spec["input"]["pfs"]
    assert (stored["branch"], stored["trigger"]["branch"]) == ("copy-trigger-1", "master")
    tc.put_file("data@master:/a", b"a")
    assert [j.datums_total for j in tc.list_jobs("copy")] == [0]  # the job at create, over the empty branch
    assert outputs(tc) == []
    second = tc.put_file("data@master:/b", b"b")
    assert second is not None and branches(tc, "data")["copy-trigger-1"].head == second.id
    job = tc.list_jobs("copy")[0]
    assert (job.state, job.datums_total, job.datums_processed) == ("success", 2, 2), job.reason
    assert outputs(tc) == ["/a", "/b"]
    tc.put_file("data@master:/c", b"c")  # one commit since the move: waits
    assert outputs(tc) == ["/a", "/b"] and len(tc.list_jobs("copy")) == 2


def test_a_parsed_spec_and_a_dry_run_read_the_trigger_branch(tc: Client) -> None:
    tc.create_repo("data")
    tc.put_file("data@master:/a", b"a")
    spec = parse_spec(copy({"pfs": {"repo": "data", "glob": "/*", "trigger": {"branch": "master", "commits": 2}}}))
    assert tc.dry_run_datums(spec) == []  # the pipeline would read its trigger branch, which has nothing yet
    tc.create_pipeline(spec)  # a PipelineSpec reaches a server as written: pfs.branch still unset
    assert branches(tc, "data")["copy-trigger-1"].trigger == "master: 2 commits" and outputs(tc) == []
    tc.put_file("data@master:/b", b"b")
    assert outputs(tc) == ["/a", "/b"] and len(tc.dry_run_datums(spec)) == 2


def test_a_size_trigger_waits_for_enough_new_data(tc: Client) -> None:
    tc.create_repo("data")
    tc.create_pipeline(copy({"pfs": {"repo": "data", "glob": "/*", "trigger": {"size": "1K"}}}))
    assert branches(tc, "data")["copy-trigger-1"].trigger == "master: 1000 B"  # parse_size: 1K is 1000 bytes
    tc.put_file("data@master:/small", b"x" * 100)
    assert outputs(tc) == [] and branches(tc, "data")["copy-trigger-1"].head is None
    tc.put_file("data@master:/big", b"x" * 2000)
    assert outputs(tc) == ["/big", "/small"]
    assert tc.get_file("copy@master:/big") == b"x" * 2000


def test_a_named_branch_is_the_trigger_branch_inside_a_cross(tc: Client) -> None:
    tc.create_repo("data")
    tc.create_repo("params")
    tc.put_file("params@master:/p", b"p")
    tc.create_pipeline(copy({"cross": [
        {"pfs": {"repo": "params", "glob": "/"}},
        {"pfs": {"repo": "data", "branch": "ready", "glob": "/*", "trigger": {"branch": "master", "commits": 2}}},
    ]}))
    assert branches(tc, "data")["ready"].trigger == "master: 2 commits"
    assert "ready" not in branches(tc, "params")
    tc.put_file("data@master:/a", b"a")
    assert outputs(tc) == []
    tc.put_file("data@master:/b", b"b")
    assert outputs(tc) == ["/a", "/b"]
    tc.put_file("params@master:/q", b"q")  # an input without a trigger runs the pipeline as ever
    assert tc.list_jobs("copy")[0].datums_total == 2


def test_updating_the_trigger_updates_the_branch(tc: Client) -> None:
    tc.create_repo("data")
    spec = copy({"pfs": {"repo": "data", "glob": "/*", "trigger": {"branch": "master", "commits": 3}}})
    tc.create_pipeline(spec)
    tc.put_file("data@master:/a", b"a")
    assert outputs(tc) == []
    spec["input"]["pfs"]["trigger"] = {"branch": "master", "commits": 1}
    tc.update_pipeline(spec)
    assert branches(tc, "data")["copy-trigger-1"].trigger == "master: 1 commit"
    assert tc.inspect_pipeline("copy").spec["input"]["pfs"]["branch"] == "copy-trigger-1"
    tc.put_file("data@master:/b", b"b")
    assert outputs(tc) == ["/a", "/b"]
    tc.update_pipeline(spec | {"description": "the same trigger"})  # unchanged: the branch stays as it is
    assert branches(tc, "data")["copy-trigger-1"].head == branches(tc, "data")["master"].head


def test_deleting_the_pipeline_leaves_the_trigger_branch_as_pachyderm_does(tc: Client) -> None:
    tc.create_repo("data")
    spec = copy({"pfs": {"repo": "data", "glob": "/*", "trigger": {"branch": "master", "commits": 1}}})
    tc.create_pipeline(spec)
    tc.put_file("data@master:/a", b"a")
    tc.delete_pipeline("copy")
    left = branches(tc, "data")["copy-trigger-1"]
    assert left.trigger == "master: 1 commit" and left.head == branches(tc, "data")["master"].head
    tc.create_pipeline(spec)  # the same spec again takes the branch as it is, and runs over its head
    assert outputs(tc) == ["/a"]


def test_a_branch_with_commits_of_its_own_or_another_trigger_is_refused_and_nothing_is_left(tc: Client) -> None:
    tc.create_repo("data")
    tc.put_file("data@master:/a", b"a")
    tc.put_file("data@staging:/mine", b"mine")
    own = {"pfs": {"repo": "data", "branch": "staging", "glob": "/*", "trigger": {"branch": "master", "commits": 1}}}
    with pytest.raises(Conflict, match=r"input\.pfs\.trigger: branch data@staging exists with commits of its own"):
        tc.create_pipeline(copy(own))
    tc.create_branch("data@ready", trigger=BranchTrigger("master", commits=5))
    other = {"pfs": {"repo": "data", "branch": "ready", "glob": "/*", "trigger": {"branch": "master", "commits": 2}}}
    with pytest.raises(Conflict, match=r"input\.pfs\.trigger: branch data@ready exists with another trigger "
                                       r"\(master: 5 commits\)"):
        tc.create_pipeline(copy(other))
    fresh = {"pfs": {"repo": "data", "name": "fresh", "glob": "/*", "trigger": {"branch": "master", "commits": 1}}}
    with pytest.raises(Conflict, match=r"input\.cross\[1\]\.pfs\.trigger: branch data@staging"):
        tc.create_pipeline(copy({"cross": [fresh, own]}))  # the first input's branch is not left behind either
    assert tc.list_pipelines() == [] and [r.name for r in tc.list_repos()] == ["data"]
    assert sorted(branches(tc, "data")) == ["master", "ready", "staging"]
    assert branches(tc, "data")["staging"].trigger is None
    assert branches(tc, "data")["ready"].trigger == "master: 5 commits"
    same = {"pfs": {"repo": "data", "branch": "ready", "glob": "/*", "trigger": {"branch": "master", "commits": 5}}}
    tc.create_pipeline(copy(same))  # the trigger the branch has: taken as it is
    assert branches(tc, "data")["ready"].trigger == "master: 5 commits"


def test_a_spec_refused_after_its_trigger_leaves_no_branch(tc: Client) -> None:
    tc.create_repo("data")
    trigger = {"pfs": {"repo": "data", "glob": "/*", "trigger": {"branch": "master", "commits": 2}}}
    with pytest.raises(RepoNotFound):
        tc.create_pipeline(copy({"cross": [trigger, {"pfs": {"repo": "nope", "glob": "/"}}]}))
    with pytest.raises(InvalidArgument, match=r"input\.cross\[1\]\.pfs\.trigger\.size: invalid size 'lots'"):
        tc.create_pipeline(copy({"cross": [trigger, {"pfs": {"repo": "data", "name": "b", "glob": "/*",
                                                             "trigger": {"size": "lots"}}}]}))
    with pytest.raises(InvalidArgument, match=r"input\.pfs\.trigger\.cron_spec: invalid cron spec"):
        tc.create_pipeline(copy({"pfs": {"repo": "data", "glob": "/*", "trigger": {"cron_spec": "every day"}}}))
    with pytest.raises(InvalidArgument, match=r"input\.pfs\.trigger: a trigger needs at least one of commits"):
        tc.create_pipeline(copy({"pfs": {"repo": "data", "glob": "/*", "trigger": {"branch": "master"}}}))
    with pytest.raises(InvalidArgument, match=r"input\.pfs\.trigger: branch 'master' cannot follow itself"):
        tc.create_pipeline(copy({"pfs": {"repo": "data", "branch": "master", "glob": "/*",
                                         "trigger": {"branch": "master", "commits": 1}}}))
    with pytest.raises(InvalidArgument, match=r"input\.pfs\.trigger\.rate_limit_spec: trigger rate limits are"):
        tc.create_pipeline(copy({"pfs": {"repo": "data", "glob": "/*",
                                         "trigger": {"commits": 1, "rate_limit_spec": "@every 1h"}}}))
    assert list(branches(tc, "data")) == [] and tc.list_pipelines() == []


def test_cron_and_all_triggers_are_set_as_branch_triggers(tc: Client) -> None:
    tc.create_repo("data")
    tc.create_pipeline(copy({"pfs": {"repo": "data", "glob": "/*",
                                     "trigger": {"all": True, "cron_spec": "@every 1h", "commits": 2}}}))
    assert branches(tc, "data")["copy-trigger-1"].trigger == "master: 2 commits and cron @every 1h"
    tc.put_file("data@master:/a", b"a")
    tc.put_file("data@master:/b", b"b")  # 2 commits, but not an hour: all must hold
    assert outputs(tc) == []


def test_trigger_branches_are_numbered_per_repo_in_pachyderms_order() -> None:
    """pachd sorts each combinator's inputs by their ``name`` (as written; "" when there is none), then counts
    per repo from 1 (``SetInputDefaults``)."""
    spec = parse_spec(copy({"union": [
        {"pfs": {"repo": "data", "name": "z", "glob": "/*", "trigger": {"commits": 1}}},
        {"pfs": {"repo": "data", "name": "a", "glob": "/*", "trigger": {"commits": 2}}},
        {"pfs": {"repo": "other", "glob": "/*", "trigger": {"branch": "staging", "commits": 3}}},
        {"pfs": {"repo": "data", "name": "m", "branch": "mine", "glob": "/*", "trigger": {"branch": "master",
                                                                                         "commits": 4}}},
    ]}))
    resolved = [c.pfs for c in resolve_input_triggers(spec).input.union or [] if c.pfs is not None]
    assert [(p.branch, p.trigger.branch if p.trigger else None) for p in resolved] == [
        ("copy-trigger-2", "master"), ("copy-trigger-1", "master"), ("copy-trigger-1", "staging"),
        ("mine", "master")]
    with pytest.raises(InvalidArgument, match=r"input\.pfs\.trigger\.branch: name the branch this trigger follows"):
        resolve_input_triggers(parse_spec(copy({"pfs": {"repo": "data", "branch": "ready", "glob": "/*",
                                                        "trigger": {"commits": 1}}})))
