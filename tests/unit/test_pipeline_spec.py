from __future__ import annotations

import json
from pathlib import Path

import pytest

from tusk.errors import InvalidArgument
from tusk.pipelines.runtimes import BwrapRuntime, LocalRuntime, explain_failure
from tusk.pipelines.spec import IGNORED_FIELDS, load_spec, parse_spec
from tusk.pipelines.support import RULES, check_supported, spec_notes
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


def test_json_documents_separated_as_yaml_documents_are(tmp_path: Path) -> None:
    """``pachctl create pipeline -f`` reads a stream of JSON objects; a file of them split by ``---`` (as in a
    multi-document YAML file) is read the same way, with or without a leading marker."""
    one, two = json.dumps(EDGES, indent=2), json.dumps(EDGES | {"pipeline": {"name": "x"}}, indent=2)
    for text in (f"{one}\n---\n{two}\n", f"---\n{one}\n---   # the second\n{two}\n---\n", one + two):
        (tmp_path / "specs.json").write_text(text)
        assert [s.name for s in load_spec(tmp_path / "specs.json")] == ["edges", "x"], text
    (tmp_path / "bad.json").write_text(f"{one}\n---\n{{ nope")
    with pytest.raises(InvalidArgument, match=r"invalid JSON in .*line 21 column 3"):
        load_spec(tmp_path / "bad.json")


def _pfs(**extra: object) -> dict[str, object]:
    return {"pfs": {"repo": "images", "glob": "/*", **extra}}


REFUSED = {  # Pachyderm's spec, as its docs write the field: (the change, the path and reason the error names)
    "s3 input with a glob": (lambda s: s.update(input=_pfs(s3=True)),
                             "input.pfs.s3: glob is '/*': an s3 input is served whole, as one bucket, so its glob "
                             "must be \"/\" (one datum), as in Pachyderm"),
    "s3 input in a cross": (lambda s: s.update(input={"cross": [_pfs(), _pfs(name="b", s3=True)]}),
                            "input.cross[1].pfs.s3: glob is '/*'"),
    "reference": (lambda s: s.update(input=_pfs(reference=True)), "input.pfs.reference: reference inputs are not"),
    "propagation_spec": (lambda s: s.update(propagation_spec={"immediate": True}),
                         "propagation_spec: propagation specs are not"),
    "repo_type": (lambda s: s.update(input=_pfs(repo_type="meta")), "input.pfs.repo_type: Tusk has user repos only"),
    "spout.marker": (lambda s: (s.pop("input"), s.update(spout={"marker": "offset"})),
                     "spout.marker: spout markers are not supported"),
    "spout.service": (lambda s: s.update(spout={"service": {"internal_port": 8888, "external_port": 30888}}),
                      "spout.service: a spout with a service is not supported"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_fields_tusk_cannot_honour_are_refused_by_path_and_reason(case: str) -> None:
    mutate, says = REFUSED[case]
    raw = json.loads(json.dumps(EDGES))
    mutate(raw)  # type: ignore[operator]
    spec = parse_spec(raw)  # they parse (a stored spec always loads)...
    with pytest.raises(InvalidArgument) as info:  # ...and are refused at create and update
        check_supported(spec)
    assert str(info.value).startswith("pipeline edges: ") and says in str(info.value), str(info.value)


def test_s3_inputs_and_s3_out_are_honoured() -> None:
    """Served by the datum's S3 endpoint (tests/integration/test_pipelines_s3.py); ``s3_out`` is stored with the
    spec, and a spec without it keeps its canonical JSON."""
    for out in ({"s3_out": True}, {"s3Out": True}):
        spec = parse_spec(EDGES | out | {"input": {"cross": [_pfs(), _pfs(name="b", s3=True, glob="/")]}})
        check_supported(spec)
        assert spec.s3_out is True and spec_notes(spec) == []
        assert '"s3_out":true' in spec.canonical_json()
    assert "s3_out" not in parse_spec(EDGES | {"s3_out": False}).canonical_json()
    assert parse_spec(EDGES).canonical_json() == parse_spec(EDGES | {"s3_out": False}).canonical_json()


def test_fields_at_their_defaults_are_not_refused() -> None:
    spec = parse_spec(EDGES | {"s3_out": False, "input": _pfs(s3=False, reference=False, repo_type="user"),
                               "transform": EDGES["transform"] | {"secrets": [], "datum_batching": False}})
    check_supported(spec)
    assert spec_notes(spec) == []


def test_fields_without_effect_are_warned_about_by_name() -> None:
    spec = parse_spec(EDGES | {"pipeline": {"name": "edges", "project": {"name": "vision"}},
                               "input": {"cross": [_pfs(project="vision"), _pfs(name="b")]},
                               "transform": EDGES["transform"] | {"debug": True, "image_pull_secrets": ["reg"]},
                               "resourceRequests": {"memory": "1G"}, "pod_patch": "[]", "egress": {"URL": "s3://b"},
                               "metadata": {"annotations": {"team": "vision"}}})
    check_supported(spec)
    notes = spec_notes(spec)
    assert "pipeline.project, input.cross[0].pfs.project: ignored: Tusk has one namespace of repos and pipelines, " \
           "Pachyderm's default project" in notes
    assert any(n.startswith("transform.debug: ignored") for n in notes)
    assert any(n.startswith("transform.image_pull_secrets: ignored: Tusk pulls no images") for n in notes)
    assert any(n.startswith("resourceRequests, pod_patch: ignored: it configures Pachyderm's Kubernetes")
               for n in notes)
    assert not any(n.startswith(("egress", "metadata")) for n in notes), notes  # honoured: egress, kept: metadata
    assert spec.egress is not None and spec.egress.url == "s3://b" and spec.annotation("team") == "vision"
    default = parse_spec(EDGES | {"pipeline": {"name": "edges", "project": {"name": "default"}}})
    assert spec_notes(default) == []


def test_every_field_set_aside_has_a_rule() -> None:
    assert set(RULES) >= IGNORED_FIELDS
    assert all(rule.why for rule in RULES.values())


def test_a_failed_lookup_is_explained_only_where_there_is_no_network() -> None:
    log = "urllib.error.URLError: <urlopen error [Errno -3] Temporary failure in name resolution>\n"
    sandbox = BwrapRuntime.__new__(BwrapRuntime)  # (its capability, not a working sandbox)
    assert "the sandbox has no network" in (explain_failure(log, sandbox) or "")
    assert "the sandbox has no network" in (explain_failure("curl: (6) Could not resolve host: x.org", sandbox) or "")
    assert explain_failure(log, LocalRuntime({})) is None  # the plain local runtime has the host's network
    assert explain_failure("Traceback: ZeroDivisionError", sandbox) is None


def test_durations() -> None:
    assert parse_duration("30s") == 30 and parse_duration("1h2m3s") == 3723 and parse_duration("500ms") == 0.5
    assert parse_duration(None) is None
    with pytest.raises(ValueError):
        parse_duration("5 minutes")
