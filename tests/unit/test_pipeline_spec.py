from __future__ import annotations

import json
from pathlib import Path

import pytest

from tusk.errors import InvalidArgument
from tusk.pipelines.spec import load_spec, parse_spec
from tusk.schedules import parse_duration

EDGES = {
    "pipeline": {"name": "edges"},
    "description": "A pipeline that performs image edge detection by using the OpenCV library.",
    "transform": {"cmd": ["python3", "/edges.py"], "image": "pachyderm/opencv:1.0"},
    "input": {"pfs": {"repo": "images", "glob": "/*"}},
}


def test_pachyderm_edges_spec_parses() -> None:
    spec = parse_spec(EDGES)
    assert spec.name == "edges"
    assert spec.input.pfs is not None and spec.input.pfs.glob == "/*" and spec.input.pfs.branch == "master"
    assert spec.datum_tries == 3 and spec.reprocess_spec == "until_success" and spec.output_branch == "master"


def test_camel_case_and_atom_alias() -> None:
    spec = parse_spec({
        "pipeline": {"name": "p"},
        "transform": {"cmd": ["sh"], "stdin": ["echo hi"], "acceptReturnCode": [1], "workingDir": "/tmp"},
        "parallelismSpec": {"constant": 4},
        "datumTimeout": "1m30s",
        "reprocessSpec": "every_job",
        "input": {"cross": [{"atom": {"repo": "a", "glob": "/*", "emptyFiles": True}},
                            {"pfs": {"repo": "b", "glob": "/", "joinOn": "$1"}}]},
    })
    assert spec.parallelism_spec.constant == 4
    assert spec.datum_timeout == 90.0
    assert spec.transform.accept_return_code == [1]
    assert spec.input.cross is not None and spec.input.cross[0].pfs is not None
    assert spec.input.cross[0].pfs.empty_files


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda s: s["transform"].update(cmdd=["x"]), "transform.cmdd: unknown field"),
    (lambda s: s["input"]["pfs"].pop("glob"), "input.pfs.glob: required field is missing"),
    (lambda s: s.update(datum_tries=0), "datum_tries"),
    (lambda s: s.update(datum_timeout="ten seconds"), "datum_timeout: invalid duration"),
    (lambda s: s.update(input={"pfs": {"repo": "a", "glob": "/"}, "cron": {"name": "c", "spec": "@every 1m"}}),
     "exactly one of"),
    (lambda s: s.update(input={"cross": [{"pfs": {"repo": "a", "glob": "/"}}, {"pfs": {"repo": "a", "glob": "/*"}}]}),
     "a repeated"),
    (lambda s: s["input"]["pfs"].update(repo="bad name"), "invalid repo name"),
    (lambda s: s["pipeline"].update(name="bad/name"), "pipeline.name"),
])
def test_errors_name_the_field(mutate: object, message: str) -> None:
    spec = json.loads(json.dumps(EDGES))
    mutate(spec)  # type: ignore[operator]
    with pytest.raises(InvalidArgument, match="invalid pipeline spec") as info:
        parse_spec(spec)
    assert message in str(info.value)


def test_kubernetes_fields_are_ignored_not_rejected() -> None:
    spec = parse_spec(EDGES | {"resource_requests": {"memory": "1G"}, "podPatch": "[]"})
    assert set(spec.ignored) == {"resource_requests", "podPatch"}


def test_load_json_stream_and_yaml(tmp_path: Path) -> None:
    (tmp_path / "two.json").write_text(json.dumps(EDGES) + "\n" + json.dumps(EDGES | {"pipeline": {"name": "x"}}))
    assert [s.name for s in load_spec(tmp_path / "two.json")] == ["edges", "x"]
    (tmp_path / "p.yaml").write_text(
        "pipeline:\n  name: wc\ntransform:\n  cmd: [sh]\ninput:\n  pfs: {repo: text, glob: '/*'}\n")
    assert load_spec(tmp_path / "p.yaml")[0].name == "wc"
    (tmp_path / "bad.json").write_text("{ nope")
    with pytest.raises(InvalidArgument, match="invalid JSON in"):
        load_spec(tmp_path / "bad.json")


def test_durations() -> None:
    assert parse_duration("30s") == 30 and parse_duration("1h2m3s") == 3723 and parse_duration("500ms") == 0.5
    assert parse_duration(None) is None
    with pytest.raises(ValueError):
        parse_duration("5 minutes")
