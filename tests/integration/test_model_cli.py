"""`tusk model ...` through the CLI (in-process), on both backends: output, JSON and exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LinearRegression

from tests.integration.test_cli import Run, backend, tusk  # noqa: F401  (the fixtures: every CLI backend)


def _model_file(tmp_path: Path, slope: float) -> Path:
    x = np.arange(10.0).reshape(-1, 1)
    path = tmp_path / f"model-{slope}.joblib"
    buf = io.BytesIO()
    joblib.dump(LinearRegression().fit(x, slope * x.ravel()), buf)
    path.write_bytes(buf.getvalue())
    return path


def test_model_commands(tusk: Run, tmp_path: Path) -> None:  # noqa: F811
    assert tusk("repo", "create", "models").code == 0
    assert tusk("put", "file", "models@master:/model.joblib", "-f", str(_model_file(tmp_path, 2.0))).code == 0
    v1 = tusk("commit", "inspect", "models@master", "--json").json()["id"]  # type: ignore[index]
    assert tusk("put", "file", "models@master:/model.joblib", "-f", str(_model_file(tmp_path, 3.0))).code == 0
    v2 = tusk("commit", "inspect", "models@master", "--json").json()["id"]  # type: ignore[index]

    listing = tusk("model", "list", "--json").json()
    assert [m["commit"] for m in listing] == [v2, v1]  # type: ignore[index]
    shown = tusk("model", "inspect", f"models@{v1}")
    assert shown.code == 0 and "blake3" in shown.out and "/model.joblib (joblib)" in shown.out
    manifest = tusk("model", "inspect", f"models@{v1}", "--json").json()
    assert manifest["format"] == "tusk-manifest:v1" and len(manifest["digest"]) == 64  # type: ignore[index]

    rows = tmp_path / "rows.csv"
    rows.write_text("1\n4\n")
    predicted = tusk("model", "predict", f"models@{v1}", "-f", str(rows), "--json").json()
    assert [round(v, 6) for v in predicted["predictions"]] == [2.0, 8.0]  # type: ignore[index]

    promoted = tusk("model", "promote", f"models@{v1}", "--to", "production", "--reason", "baseline [v1]")
    assert promoted.code == 0 and "(promoted by tester): baseline [v1]" in promoted.out
    assert tusk("model", "promote", f"models@{v2}", "--to", "production").code == 0  # --reason is optional
    back = tusk("model", "rollback", "models", "--to", "production", "--reason", "v2 drifts at night",
                "--json").json()
    assert back["to_commit"] == v1 and back["reason"] == "rollback"  # type: ignore[index]
    assert back["note"] == "v2 drifts at night"  # type: ignore[index]
    history = tusk("model", "history", "models@production", "--json").json()
    assert [h["reason"] for h in history] == ["rollback", "promote", "promote"]  # type: ignore[union-attr]
    assert [h["note"] for h in history] == ["v2 drifts at night", None, "baseline [v1]"]  # type: ignore[union-attr]
    assert all(h["actor"] == "tester" for h in history)  # type: ignore[union-attr]
    table = tusk("model", "history", "models@production")
    header = next(line for line in table.out.splitlines() if "┃" in line)
    assert header.split() == ["┃", "BRANCH", "┃", "FROM", "┃", "TO", "┃", "MOVE", "┃", "ACTOR", "┃", "MOVED", "┃",
                              "WHY", "┃"]
    moves = [line for line in table.out.splitlines() if "│" in line]
    assert moves[0].rstrip(" │").endswith("v2 drifts at night") and "baseline [v1]" in moves[2]
    too_long = tusk("model", "promote", f"models@{v2}", "--to", "production", "--reason", "x" * 1001)
    assert too_long.code == 2 and "1000" in too_long.err and too_long.err.strip().count("\n") == 0, too_long.err
    escape = tusk("model", "rollback", "models", "--to", "production", "--reason", "\x1b[2Jgone")
    assert escape.code == 2 and "control character" in escape.err and escape.err.strip().count("\n") == 0
    assert tusk("commit", "inspect", "models@production", "--json").json()["id"] == v1  # type: ignore[index]
    again = tusk("model", "rollback", "models", "--to", "production")
    assert again.code == 2 and "no earlier model" in again.err

    assert tusk("model", "verify", "models@production").code == 0
    export = tmp_path / "export"
    assert tusk("model", "export", "models@production", str(export)).code == 0
    assert json.loads((export / "tusk-manifest.json").read_text())["commit"] == v1


def test_model_errors_have_exit_codes(tusk: Run, tmp_path: Path) -> None:  # noqa: F811
    assert tusk("repo", "create", "data").code == 0
    assert tusk("put", "file", "data@master:/rows.csv", "-f", "-", stdin=b"1,2\n").code == 0
    missing = tusk("model", "inspect", "data@master")
    assert missing.code == 2 and "holds no model file" in missing.err
    assert tusk("model", "promote", "data@master", "--to", "production").code == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("")
    assert tusk("put", "file", "data@master:/m.joblib", "-f", str(_model_file(tmp_path, 1.0))).code == 0
    empty = tusk("model", "predict", "data@master", "-f", str(bad))
    assert empty.code == 2 and "no rows" in empty.err
