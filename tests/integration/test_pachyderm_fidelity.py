"""Pachyderm users' own pipelines run unmodified: the specs below are written as Pachyderm's documentation and
examples write them (with ``image`` dropped and the example's program written out in the shell)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tusk import Client
from tusk.config import Settings
from tusk.errors import InvalidArgument, SecretNotFound
from tusk.pipelines.runtimes import BwrapRuntime

ROOT = Path(__file__).resolve().parents[2]


def _put(c: Client, repo: str, files: dict[str, bytes]) -> None:
    with c.modify(f"{repo}@master") as mod:
        for path, data in files.items():
            mod.put_bytes(path, data)


def _files(c: Client, ref: str) -> dict[str, bytes]:
    return {f.path: c.get_file(f"{ref}:{f.path}") for f in c.walk_files(ref) if f.kind == "file"}


def _env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


# -- one repo under two names -------------------------------------------------------------------------------------
PAIRS_CMD = ["sh", "-c", 'ls /pfs/left /pfs/right > /dev/null && '
                         'cat $left $right > "/pfs/out/$(basename $left)-$(basename $right)"']
SAME_REPO_TWICE: dict[str, tuple[dict[str, Any], dict[str, bytes], dict[str, bytes]]] = {
    # combinator: (input, files of data, expected output)
    "cross": ({"cross": [{"pfs": {"repo": "data", "glob": "/*", "name": "left"}},
                         {"pfs": {"repo": "data", "glob": "/*", "name": "right"}}]},
              {"/a": b"1\n", "/b": b"2\n"},
              {"/a-a": b"1\n1\n", "/a-b": b"1\n2\n", "/b-a": b"2\n1\n", "/b-b": b"2\n2\n"}),
    "join": ({"join": [{"pfs": {"repo": "data", "glob": "/(*).txt", "join_on": "$1", "name": "left"}},
                       {"pfs": {"repo": "data", "glob": "/(*).txt", "join_on": "$1", "name": "right"}}]},
             {"/a.txt": b"1\n", "/b.txt": b"2\n"},
             {"/a.txt-a.txt": b"1\n1\n", "/b.txt-b.txt": b"2\n2\n"}),
}


@pytest.mark.parametrize("combinator", sorted(SAME_REPO_TWICE))
def test_one_repo_read_under_two_names(pc: Client, combinator: str) -> None:
    inp, data, expected = SAME_REPO_TWICE[combinator]
    pc.create_repo("data")
    _put(pc, "data", data)
    pc.create_pipeline({"pipeline": {"name": "pairs"}, "transform": {"cmd": PAIRS_CMD}, "input": inp})
    job = pc.list_jobs("pairs")[0]
    assert job.state == "success", job.reason
    assert _files(pc, "pairs@master") == expected
    assert sorted(i["name"] for i in job.input_commits) == ["left", "right"]  # the job keeps each named input
    datum = pc.list_datums(job.id)[0]
    assert sorted(i["name"] for i in datum.inputs) == ["left", "right"]
    out = pc.inspect_commit("pairs@master")
    assert out.provenance == [{"repo": "data", "branch": "master", "commit": pc.inspect_commit("data@master").id}]

    pc.put_file("data@master:/c" if combinator == "cross" else "data@master:/c.txt", b"3\n")  # later writes too
    job = pc.list_jobs("pairs")[0]
    assert job.state == "success", job.reason
    assert len(_files(pc, "pairs@master")) == (9 if combinator == "cross" else 3)


def test_union_and_group_of_one_repo_under_two_names(pc: Client) -> None:
    pc.create_repo("data")
    _put(pc, "data", {"/x-1": b"a", "/x-2": b"b", "/y-1": b"c"})
    pc.create_pipeline({"pipeline": {"name": "both"},
                        "transform": {"cmd": ["sh", "-c", 'for f in /pfs/*/*; do n=$(basename $(dirname $f)); '
                                                          'cp $f "/pfs/out/$n-$(basename $f)"; done']},
                        "input": {"union": [{"pfs": {"repo": "data", "glob": "/x-*", "name": "left"}},
                                            {"pfs": {"repo": "data", "glob": "/y-*", "name": "right"}}]}})
    assert pc.list_jobs("both")[0].state == "success"
    assert _files(pc, "both@master") == {"/left-x-1": b"a", "/left-x-2": b"b", "/right-y-1": b"c"}
    pc.create_pipeline({"pipeline": {"name": "grouped"},
                        "transform": {"cmd": ["sh", "-c", 'for d in /pfs/left /pfs/right; do if [ -d $d ]; then '
                                                          'cat $d/*; fi; done > "/pfs/out/$PACH_DATUM_left_GROUP_BY"']},
                        "input": {"group": [{"pfs": {"repo": "data", "glob": "/(*)-1", "group_by": "$1",
                                                     "name": "left"}},
                                            {"pfs": {"repo": "data", "glob": "/(*)-2", "group_by": "$1",
                                                     "name": "right"}}]}})
    job = pc.list_jobs("grouped")[0]
    assert job.state == "success", job.reason
    assert _files(pc, "grouped@master") == {"/x": b"ab", "/y": b"c"}


def test_hyperparameter_example_crosses_one_repo_twice(pc: Client) -> None:
    """Pachyderm's examples/ml/hyperparameter model.pipeline.json: c-parameters and gamma-parameters are both the
    repo ``parameters``; the training program is replaced by a line naming what it would train."""
    pc.create_repo("raw_data")
    pc.create_repo("parameters")
    pc.put_file("raw_data@master:/iris.csv", b"5.1,3.5,1.4,0.2,setosa\n4.9,3.0,1.4,0.2,setosa\n")
    _put(pc, "parameters", {"/c_parameters.txt/0000": b"0.1\n", "/c_parameters.txt/0001": b"1\n",
                            "/gamma_parameters.txt/0000": b"0.01\n", "/gamma_parameters.txt/0001": b"0.1\n"})
    pc.create_pipeline({
        "pipeline": {"name": "model"},
        "description": "A pipeline that trains the model for each combination of C and Gamma parameters.",
        "transform": {"cmd": ["sh"], "stdin": [
            "cp /pfs/raw_data/iris.csv /tmp/iris.csv",
            "for cf in /pfs/c-parameters/c_parameters.txt/*",
            "do",
            "for gf in /pfs/gamma-parameters/gamma_parameters.txt/*",
            "do",
            "cparam=`cat $cf`",
            "gammaparam=`cat $gf`",
            'echo "C=$cparam gamma=$gammaparam rows=$(wc -l < /pfs/raw_data/iris.csv)" '
            "> /pfs/out/model_C${cparam}_G${gammaparam}.txt",
            "done",
            "done",
        ]},
        "parallelism_spec": {"constant": "1"},
        "input": {"cross": [
            {"pfs": {"repo": "raw_data", "glob": "/iris.csv"}},
            {"pfs": {"name": "c-parameters", "repo": "parameters", "glob": "/c_parameters.txt/*"}},
            {"pfs": {"name": "gamma-parameters", "repo": "parameters", "glob": "/gamma_parameters.txt/*"}},
        ]},
    })
    job = pc.list_jobs("model")[0]
    assert (job.state, job.datums_total) == ("success", 4), job.reason
    assert _files(pc, "model@master") == {
        f"/model_C{c}_G{g}.txt": f"C={c} gamma={g} rows=2\n".encode() for c in ("0.1", "1") for g in ("0.01", "0.1")}
    assert sorted(p["repo"] for p in pc.inspect_commit("model@master").provenance) == ["parameters", "raw_data"]


def test_bookkeeping_that_raises_fails_the_job_and_later_writes_work(pc: Client,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import IntegrityError

    pc.create_repo("data")
    pc.put_file("data@master:/a", b"1")
    commits = pc.services.commits
    land = commits.land

    def broken(repo: str, *args: Any, **kwargs: Any) -> Any:
        if repo == "copy":
            raise IntegrityError("INSERT INTO commit_provenance ...", {}, Exception("UNIQUE constraint failed"))
        return land(repo, *args, **kwargs)

    monkeypatch.setattr(commits, "land", broken)
    pc.create_pipeline({"pipeline": {"name": "copy"}, "transform": {"cmd": ["sh", "-c", "cp $data /pfs/out/"]},
                        "input": {"pfs": {"repo": "data", "glob": "/*"}}})
    job = pc.list_jobs("copy")[0]
    assert job.state == "failure" and "UNIQUE constraint failed" in (job.reason or "")  # never left running
    monkeypatch.setattr(commits, "land", land)
    pc.put_file("data@master:/b", b"2")
    assert pc.list_jobs("copy")[0].state == "success"
    assert _files(pc, "copy@master") == {"/a": b"1", "/b": b"2"}


# -- the worker environment ---------------------------------------------------------------------------------------
def test_join_example_sees_its_join_key(pc: Client) -> None:
    """Pachyderm's examples/joins inner_join.pipeline.json, its program writing what it was given."""
    pc.create_repo("stores")
    pc.create_repo("purchases")
    _put(pc, "stores", {"/STOREID1.txt": b"zip 02108\n", "/STOREID2.txt": b"zip 94110\n"})
    _put(pc, "purchases", {"/P1_STOREID1.txt": b"apple\n", "/P2_STOREID1.txt": b"pear\n",
                           "/P3_STOREID2.txt": b"fig\n", "/P4_STOREID3.txt": b"no such store\n"})
    pc.create_pipeline({
        "pipeline": {"name": "inner_join"},
        "description": "A pipeline that lists all purchases by zipcode joining stores and purchases information.",
        "input": {"join": [
            {"pfs": {"repo": "stores", "branch": "master", "glob": "/STOREID(*).txt", "join_on": "$1"}},
            {"pfs": {"repo": "purchases", "branch": "master", "glob": "/*_STOREID(*).txt", "join_on": "$1"}},
        ]},
        "transform": {"cmd": ["bash"], "stdin": [
            "zip=$(cut -d' ' -f2 $stores)",
            "mkdir -p /pfs/out/$zip",
            'echo "store $PACH_DATUM_stores_JOIN_ON purchase-key $PACH_DATUM_purchases_JOIN_ON $(cat $purchases)" '
            "> /pfs/out/$zip/$(basename $purchases)",
        ]},
    })
    job = pc.list_jobs("inner_join")[0]
    assert (job.state, job.datums_total) == ("success", 3), job.reason
    assert _files(pc, "inner_join@master") == {
        "/02108/P1_STOREID1.txt": b"store 1 purchase-key 1 apple\n",
        "/02108/P2_STOREID1.txt": b"store 1 purchase-key 1 pear\n",
        "/94110/P3_STOREID2.txt": b"store 2 purchase-key 2 fig\n",
    }


def test_group_example_writes_one_directory_per_group(pc: Client) -> None:
    """Pachyderm's examples/group lab_group_by_hospital.pipeline.json, exactly."""
    pc.create_repo("labresults")
    _put(pc, "labresults", {
        "/T1606331395-LIPID-PATID1-CLIA24D9871327.txt": b"cholesterol 180\n",
        "/T1606707557-LIPID-PATID2-CLIA24D9871327.txt": b"cholesterol 210\n",
        "/T1606707613-LIPID-PATID1-CLIA38D0123456.txt": b"cholesterol 175\n",
    })
    pc.create_pipeline({
        "pipeline": {"name": "group_by_hospital"},
        "description": "A pipeline that groups lab test results files by hospital using the files naming pattern.",
        "input": {"group": [{"pfs": {"repo": "labresults", "branch": "master", "glob": "/*-CLIA(*).txt",
                                     "group_by": "$1"}}]},
        "transform": {"cmd": ["bash"], "stdin": [
            "mkdir -p /pfs/out/${PACH_DATUM_labresults_GROUP_BY}/",
            "cp /pfs/labresults/* /pfs/out/${PACH_DATUM_labresults_GROUP_BY}/",
        ]},
    })
    job = pc.list_jobs("group_by_hospital")[0]
    assert (job.state, job.datums_total) == ("success", 2), job.reason
    assert _files(pc, "group_by_hospital@master") == {
        "/24D9871327/T1606331395-LIPID-PATID1-CLIA24D9871327.txt": b"cholesterol 180\n",
        "/24D9871327/T1606707557-LIPID-PATID2-CLIA24D9871327.txt": b"cholesterol 210\n",
        "/38D0123456/T1606707613-LIPID-PATID1-CLIA38D0123456.txt": b"cholesterol 175\n",
    }


ENV_SPEC = {"pipeline": {"name": "env"}, "input": {"pfs": {"glob": "/", "repo": "images"}},
            "transform": {"cmd": ["sh"], "stdin": ["env > /pfs/out/env"]}}  # Pachyderm's "view env variables"


def test_worker_variables_are_pachyderms_and_documented(pc: Client) -> None:
    pc.create_repo("images")
    first = pc.put_file("images@master:/liberty.png", b"png")
    assert first is not None
    pc.create_pipeline(ENV_SPEC)
    job = pc.list_jobs("env")[0]
    env = _env(pc.get_file("env@master:/env").decode())
    assert env["PACH_JOB_ID"] == job.id
    assert env["PACH_OUTPUT_COMMIT_ID"] == job.output_commit == pc.inspect_commit("env@master").id
    assert env["PACH_DATUM_ID"] == pc.list_datums(job.id)[0].id
    assert env["images_COMMIT"] == first.id and env["images"].endswith("/images")
    assert env["PPS_PIPELINE_NAME"] == "env" and env["PPS_PROJECT_NAME"] == "default"
    assert re.fullmatch(r"[0-9a-f]{32}", env["PPS_SPEC_COMMIT"])
    assert re.fullmatch(r"pipeline-env-v1-[0-9a-f]{5}", env["PPS_POD_NAME"])

    pc.put_file("images@master:/more.png", b"png2")  # another job of the same version: the same spec commit
    assert _env(pc.get_file("env@master:/env").decode())["PPS_SPEC_COMMIT"] == env["PPS_SPEC_COMMIT"]
    pc.update_pipeline(ENV_SPEC | {"transform": {"cmd": ["sh"], "stdin": ["env > /pfs/out/env", "true"]}})
    after = _env(pc.get_file("env@master:/env").decode())
    assert after["PPS_SPEC_COMMIT"] != env["PPS_SPEC_COMMIT"] and after["PPS_POD_NAME"].startswith("pipeline-env-v2-")

    documented = (ROOT / "docs" / "pachyderm.md").read_text()
    worker_vars = {re.sub(r"^images(?=_|$)|(?<=PACH_DATUM_)images(?=_)", "<input>", k) for k in env
                   if k.startswith(("PACH_", "PPS_", "images"))}
    assert worker_vars >= {"<input>", "<input>_COMMIT", "PACH_JOB_ID", "PACH_DATUM_ID", "PACH_OUTPUT_COMMIT_ID",
                           "PPS_PIPELINE_NAME", "PPS_PROJECT_NAME", "PPS_SPEC_COMMIT", "PPS_POD_NAME"}
    for name in sorted(worker_vars | {"PACH_DATUM_<input>_JOIN_ON", "PACH_DATUM_<input>_GROUP_BY"}):
        assert f"| `{name}` |" in documented, f"{name} is set for datums but not in docs/pachyderm.md's table"


# -- spec files and fields ----------------------------------------------------------------------------------------
def test_a_json_file_of_several_specs(pc: Client, tmp_path: Path) -> None:
    pc.create_repo("images")
    pc.put_file("images@master:/a.png", b"png")
    first = ENV_SPEC | {"pipeline": {"name": "one"}}
    second = ENV_SPEC | {"pipeline": {"name": "two"}}
    third = ENV_SPEC | {"pipeline": {"name": "three"}}
    path = tmp_path / "pipelines.json"
    path.write_text(f"{json.dumps(first, indent=2)}\n---\n{json.dumps(second, indent=2)}\n{json.dumps(third)}\n")
    assert [p.name for p in pc.create_pipeline(path)] == ["one", "two", "three"]
    assert {j.pipeline for j in pc.list_jobs() if j.state == "success"} == {"one", "two", "three"}


def test_refused_fields_write_nothing_and_warned_fields_are_named(pc: Client) -> None:
    pc.create_repo("images")
    with pytest.raises(InvalidArgument, match=r"input\.pfs\.s3: glob is '/\*': .*its glob must be \"/\""):
        pc.create_pipeline(ENV_SPEC | {"input": {"pfs": {"glob": "/*", "repo": "images", "s3": True}}})
    with pytest.raises(SecretNotFound, match=r"transform\.secrets\[0\]: secret 'aws' not found"):  # (make it first)
        pc.create_pipeline(ENV_SPEC | {"transform": {"cmd": ["sh"], "secrets": [
            {"name": "aws", "env_var": "AWS_KEY", "key": "key"}]}})
    assert [p.name for p in pc.list_pipelines()] == [] and [r.name for r in pc.list_repos()] == ["images"]
    info = pc.create_pipeline(ENV_SPEC | {"pipeline": {"name": "env", "project": {"name": "vision"}},
                                          "resource_requests": {"memory": "1G"}})[0]
    assert any(n.startswith("pipeline.project: ignored: Tusk has one namespace") for n in info.notes), info.notes
    assert any(n.startswith("resource_requests: ignored") for n in info.notes), info.notes


@pytest.mark.skipif(not BwrapRuntime.available(), reason="bubblewrap is not installed")
def test_a_datum_that_needs_the_network_says_the_sandbox_has_none(backend: Any, tmp_path: Path) -> None:
    with Client(settings=Settings.from_env(env=backend.env | {"TUSK_RUNTIME": "bwrap"})) as c:
        c.create_repo("urls")
        c.put_file("urls@master:/site", b"http://example.com/\n")
        c.create_pipeline({"pipeline": {"name": "fetch"}, "datum_tries": 1,
                           "transform": {"cmd": ["python3", "-c",
                                                 "import urllib.request; urllib.request.urlopen("
                                                 "open('/pfs/urls/site').read().strip(), timeout=5)"]},
                           "input": {"pfs": {"repo": "urls", "glob": "/*"}}})
        job = c.list_jobs("fetch")[0]
        assert job.state == "failure"
        datum = c.list_datums(job.id)[0]
        assert "the sandbox has no network" in (datum.error or ""), datum.error
        assert "the sandbox has no network" in (job.reason or ""), job.reason
