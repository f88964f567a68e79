"""docs/pachyderm.md's table of every Pachyderm spec field is the one the code gives (RULES and the spec's
models), and every field a user's spec may carry is honoured, warned about or refused: none is silently taken."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tusk.errors import InvalidArgument
from tusk.pipelines.catalogue import PACHYDERM_FIELDS, render_table, verdict
from tusk.pipelines.spec import parse_spec
from tusk.pipelines.support import check_supported, spec_notes

ROOT = Path(__file__).resolve().parents[2]


def test_the_docs_carry_the_table_the_code_gives() -> None:
    spec = importlib.util.spec_from_file_location("pachyderm_fields", ROOT / "scripts" / "pachyderm_fields.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    doc = (ROOT / "docs" / "pachyderm.md").read_text()
    assert script.with_table(doc) == doc, "run `python scripts/pachyderm_fields.py --write` and commit the docs"
    assert render_table().splitlines()[0] in doc


BASE = {"pipeline": {"name": "p"}, "transform": {"cmd": ["true"]}, "input": {"pfs": {"repo": "r", "glob": "/"}}}


@pytest.mark.parametrize("path", ["tf_job", "determined", "spec_commit", "dry_run", "input.pfs.repo_type",
                                  "propagation_spec"])
def test_a_refused_field_is_refused_by_name(path: str) -> None:
    what, _ = verdict(path)
    assert what == "refused"
    value = {"x": 1} if path not in ("dry_run",) else True
    doc = dict(BASE)
    if path.startswith("input.pfs."):
        doc = BASE | {"input": {"pfs": BASE["input"]["pfs"] | {path.rsplit(".", 1)[1]: "meta"}}}  # type: ignore[index]
    else:
        doc = BASE | {path: value}
    with pytest.raises(InvalidArgument, match=path.rsplit(".", 1)[-1]):
        check_supported(parse_spec(doc))


def test_every_catalogued_field_has_a_verdict_with_a_reason() -> None:
    for path in PACHYDERM_FIELDS:
        what, why = verdict(path)
        assert what in ("honoured", "warned", "refused") and why, path


def test_a_warned_field_is_named_in_the_notes() -> None:
    spec = parse_spec(BASE | {"standby": True, "tolerations": [{"key": "k"}]})
    notes = " ".join(spec_notes(spec))
    assert "standby" in notes and "tolerations" in notes


def test_every_pachctl_command_runs_in_tusk_or_says_what_to_use_instead() -> None:
    from tusk.cli.pachctl import NOT_IN_TUSK, PACHCTL_COMMANDS, resolve

    for command in PACHCTL_COMMANDS:
        runs = resolve(command)
        assert runs or NOT_IN_TUSK.get(command), f"pachctl {command}: neither a Tusk command nor a reason"
        assert not (runs and command in NOT_IN_TUSK), f"pachctl {command} runs now: drop its reason"
    assert resolve("create repo") == "tusk repo create" and resolve("run cron") == "tusk pipeline run-cron"
