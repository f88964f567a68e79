"""Short ids: any unique prefix of 6+ hex characters of a commit, global, job or datum id works wherever the
id does, through the CLI, embedded on both stores and remote (so the SDK and the REST API too)."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Backend
from tests.integration.test_cli import Run, backend, tusk  # noqa: F401  (the fixtures: every CLI backend)
from tests.integration.test_model_cli import _model_file
from tusk.errors import AmbiguousId
from tusk.pipelines import jobs as job_module
from tusk.versioning import commits as commit_module

SHORT = re.compile(r"(?<![0-9a-f])[0-9a-f]{8}(?![0-9a-f])")


def _ids_with_prefix(prefix: str) -> Callable[[], str]:
    return lambda: prefix + uuid.uuid4().hex[len(prefix):]


def _commit(tusk: Run, ref: str, data: str) -> str:  # noqa: F811
    assert tusk("put", "file", ref, "-f", "-", stdin=data.encode()).code == 0
    repo, _, rest = ref.partition("@")
    info = tusk("commit", "inspect", f"{repo}@{rest.split(':')[0]}", "--json").json()
    return str(info["id"])  # type: ignore[index]


def test_short_commit_ids_in_every_ref(tusk: Run) -> None:  # noqa: F811
    assert tusk("repo", "create", "data").code == 0
    one = _commit(tusk, "data@master:/a.txt", "one")
    two = _commit(tusk, "data@master:/a.txt", "two")
    s1, s2 = one[:6], two[:8]
    assert tusk("get", "file", f"data@{s1}:/a.txt").out == "one"
    assert tusk("get", "file", f"data@{s2}^:/a.txt").out == "one"  # ancestry after a short id
    assert [f["path"] for f in tusk("list", "file", f"data@{s1}", "--json").json()] == ["/a.txt"]  # type: ignore
    assert tusk("inspect", "file", f"data@{s1}:/a.txt", "--json").json()["size_bytes"] == 3  # type: ignore
    diff = tusk("diff", "file", f"data@{s2}", f"data@{s1}", "--json").json()
    assert [(d["path"], d["change"]) for d in diff] == [("/a.txt", "modified")]  # type: ignore[index]

    assert tusk("commit", "inspect", f"data@{s1}", "--json").json()["id"] == one  # type: ignore[index]
    assert tusk("commit", "wait", f"data@{s2}", "--json").json()["id"] == two  # type: ignore[index]
    commit_set = tusk("inspect", "commit", s1, "--json").json()  # a short global id: the commit set
    assert [c["id"] for c in commit_set] == [one]  # type: ignore[index]
    assert tusk("lineage", f"data@{s1}", "--json").json()["commit"]["commit"] == one  # type: ignore[index]

    made = tusk("branch", "create", "data@dev", "--head", s1)
    assert made.code == 0 and one[:8] in made.out  # printed short, as tables print ids
    assert tusk("get", "file", "data@dev:/a.txt").out == "one"
    assert tusk("branch", "create", "data@dev", "--head", f"data@{s2}").code == 0
    assert tusk("get", "file", "data@dev:/a.txt").out == "two"

    assert tusk("commit", "delete", f"data@{s2}").code == 0  # a history edit by short id
    assert tusk("commit", "inspect", "data@master", "--json").json()["id"] == one  # type: ignore[index]


def test_a_branch_wins_and_a_short_prefix_is_no_prefix(tusk: Run) -> None:  # noqa: F811
    assert tusk("repo", "create", "data").code == 0
    one = _commit(tusk, "data@master:/a.txt", "one")
    _commit(tusk, "data@master:/a.txt", "two")
    assert tusk("branch", "create", f"data@{one[:6]}", "--head", "master").code == 0  # a branch named like one
    assert tusk("get", "file", f"data@{one[:6]}:/a.txt").out == "two"  # the branch, not the commit
    assert tusk("get", "file", f"data@{one[:7]}:/a.txt").out == "one"
    short = tusk("get", "file", f"data@{one[:5]}:/a.txt")
    assert short.code == 2 and "not found" in short.err and "at least 6 characters" in short.err
    assert tusk("commit", "inspect", one[:5]).code == 2  # not a global id either
    missing = tusk("get", "file", "data@0123456789:/a.txt")
    assert missing.code == 2 and "no branch or commit '0123456789'" in missing.err


def test_an_ambiguous_prefix_lists_the_candidates(tusk: Run, backend: Backend,  # noqa: F811
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assert tusk("repo", "create", "data").code == 0
    monkeypatch.setattr(commit_module, "new_commit_id", _ids_with_prefix("abcdef"))  # (the server's too)
    one = _commit(tusk, "data@master:/a.txt", "one")
    two = _commit(tusk, "data@master:/a.txt", "two")
    for args in (("get", "file", "data@abcdef:/a.txt"), ("commit", "inspect", "data@abcdef^"),
                 ("commit", "delete", "data@abcdef"), ("model", "promote", "data@abcdef", "--to", "prod"),
                 ("inspect", "commit", "abcdef")):
        r = tusk(*args)
        assert r.code == 2, args
        assert len(r.err.strip().splitlines()) == 1 and "ambiguous" in r.err, r.err
        assert one in r.err and two in r.err
    assert tusk("get", "file", f"data@{one[:10]}:/a.txt").out == "one"  # more characters settle it
    with backend.client() as client, pytest.raises(AmbiguousId, match="abcdef"):  # the same class, remote too
        client.inspect_commit("data@abcdef")
    with backend.client() as client, pytest.raises(AmbiguousId):
        client.inspect_commit_set("abcdef")


def test_printed_ids_round_trip_and_pipes_see_them_whole(tusk: Run, backend: Backend) -> None:  # noqa: F811
    assert tusk("repo", "create", "data").code == 0
    ids = [_commit(tusk, "data@master:/a.txt", f"v{i}") for i in range(3)]
    table = tusk("list", "commit", "data").out
    shown = SHORT.findall(table)
    assert {i[:8] for i in ids} <= set(shown)
    for short in set(shown):
        full = tusk("commit", "inspect", f"data@{short}", "--json").json()["id"]  # type: ignore[index]
        assert full in ids and full.startswith(short)  # type: ignore[union-attr]
    assert tusk("list", "commit", "data", "--json").json()[0]["id"] == ids[-1]  # type: ignore[index]

    long = "a description long enough to make the table wider than eighty columns, by far"
    assert tusk("put", "file", "data@master:/b.txt", "-f", "-", "-m", long, stdin=b"b").code == 0
    piped = subprocess.run([sys.executable, "-m", "tusk", "list", "commit", "data"], capture_output=True,
                           text=True, env=backend.subprocess_env() | {"COLUMNS": "80"}, timeout=120, check=True)
    assert long in piped.stdout and "…" not in piped.stdout
    assert all(i[:8] in piped.stdout for i in ids)
    row = next(line for line in piped.stdout.splitlines() if long in line)
    assert SHORT.search(row) is not None  # the id on the same line, whole


def test_short_job_datum_and_global_ids(tusk: Run, tmp_path: Path,  # noqa: F811
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUSK_RUNTIME", "local")
    spec = tmp_path / "wc.yaml"
    spec.write_text("pipeline: {name: wc}\n"
                    "transform:\n  cmd: [sh, -c, 'echo counting; wc -c < $text > /pfs/out/$(basename $text)']\n"
                    "input: {pfs: {repo: text, glob: '/*'}}\n")
    assert tusk("repo", "create", "text").code == 0
    assert tusk("put", "file", "text@master:/a", "-f", "-", stdin=b"abc").code == 0
    assert tusk("create", "pipeline", "-f", str(spec)).code == 0
    job = tusk("list", "job", "--json").json()[0]  # type: ignore[index]
    jid, gid = job["id"], job["global_id"]  # type: ignore[index]
    assert tusk("inspect", "job", jid[:8], "--json").json()["id"] == jid  # type: ignore[index]
    assert tusk("job", "wait", jid[:6], "--json").json()["state"] == "success"  # type: ignore[index]
    assert [j["id"] for j in tusk("list", "job", "--global-id", gid[:8], "--json").json()] == [jid]  # type: ignore
    datums = tusk("list", "datum", jid[:8], "--json").json()
    did = datums[0]["id"]  # type: ignore[index]
    shown = tusk("inspect", "datum", jid[:8], did[:8])
    assert shown.code == 0 and "counting" in shown.out
    logs = tusk("logs", "--job", jid[:8], "--datum", did[:8])
    assert logs.code == 0 and f"{jid[:8]} {did[:8]} counting" in logs.out  # what logs print works as an argument
    assert "counting" in tusk("logs", "--datum", did[:8]).out
    output = tusk("commit", "inspect", "wc@master", "--json").json()["id"]  # type: ignore[index]
    lineage = tusk("lineage", f"wc@{output[:8]}", "--json").json()
    assert lineage["commit"]["job"] == jid  # type: ignore[index]

    for short in set(SHORT.findall(tusk("list", "job").out)):  # the job table's job and global ids
        assert tusk("inspect", "job", short).code == 0 or tusk("inspect", "commit", short).code == 0

    monkeypatch.setattr(job_module, "new_commit_id", _ids_with_prefix("fedcba"))
    assert tusk("put", "file", "text@master:/b", "-f", "-", stdin=b"b").code == 0
    assert tusk("put", "file", "text@master:/c", "-f", "-", stdin=b"c").code == 0
    twins = [j["id"] for j in tusk("list", "job", "--json").json() if j["id"].startswith("fedcba")]  # type: ignore
    assert len(twins) == 2
    ambiguous = tusk("inspect", "job", "fedcba")
    assert ambiguous.code == 2 and all(t in ambiguous.err for t in twins)
    assert len(ambiguous.err.strip().splitlines()) == 1


def test_model_promote_and_rollback_by_short_id(tusk: Run, tmp_path: Path) -> None:  # noqa: F811
    assert tusk("repo", "create", "models").code == 0
    assert tusk("put", "file", "models@master:/m.joblib", "-f", str(_model_file(tmp_path, 2.0))).code == 0
    v1 = tusk("commit", "inspect", "models@master", "--json").json()["id"]  # type: ignore[index]
    assert tusk("put", "file", "models@master:/m.joblib", "-f", str(_model_file(tmp_path, 3.0))).code == 0
    v2 = tusk("commit", "inspect", "models@master", "--json").json()["id"]  # type: ignore[index]

    listed = SHORT.findall(tusk("model", "list").out)
    assert v1[:8] in listed and v2[:8] in listed
    assert tusk("model", "inspect", f"models@{v1[:8]}", "--json").json()["commit"] == v1  # type: ignore[index]
    promoted = tusk("model", "promote", f"models@{v1[:6]}", "--to", "production")
    assert promoted.code == 0 and v1[:8] in promoted.out
    printed = SHORT.findall(promoted.out)[-1]  # the promote message's id works as an argument
    assert tusk("model", "promote", f"models@{printed}", "--to", "staging").code == 0
    assert tusk("model", "promote", f"models@{v2[:8]}", "--to", "production").code == 0
    back = tusk("model", "rollback", "models", "--to", "production", "--json").json()
    assert back["to_commit"] == v1  # type: ignore[index]
    history = tusk("model", "history", "models@production").out
    assert v1[:8] in history and v2[:8] in history


def test_a_deployment_given_a_short_id_is_pinned_to_the_full_id(tusk: Run, tmp_path: Path) -> None:  # noqa: F811
    assert tusk("repo", "create", "models").code == 0
    assert tusk("put", "file", "models@master:/m.joblib", "-f", str(_model_file(tmp_path, 2.0))).code == 0
    v1 = tusk("commit", "inspect", "models@master", "--json").json()["id"]  # type: ignore[index]
    spec = tmp_path / "deploy.yaml"
    spec.write_text(f"name: d\npredictors:\n  - {{name: pinned, model: 'models@{v1[:7]}:/m.joblib'}}\n"
                    "  - {name: follows, model: 'models@master:/m.joblib', weight: 0}\n")
    created = tusk("deploy", "create", "-f", str(spec))
    assert created.code == 0, created.err
    stored = tusk("deploy", "inspect", "d", "--json").json()
    models = {p["name"]: p["model"] for p in stored["spec"]["predictors"]}  # type: ignore[index]
    assert models == {"pinned": f"models@{v1}:/m.joblib", "follows": "models@master:/m.joblib"}
