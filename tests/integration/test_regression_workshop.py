"""Pachyderm's regression workshop, as its users run it: Pachyderm 1.x specs (`atom` inputs, `"constant": "1"`)
whose compiled code lives in images (`FROM alpine`, `ADD goregtrain /`), loaded with the 1.x verbs
(`create-repo`, `put-file REPO BRANCH PATH -c -f`, `create-pipeline -f`). Exercise 3 changes only the image tag
(`goregtrain:single` to `goregtrain:multi`), and the model changes accordingly.

The Go programs are C here (no Go toolchain on the machine): statically linked, as the workshop's Go binaries
are, and built into images with `docker save`'s layout by tests/images.py."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_runner import Run, cli_runner
from tests.images import busybox_layer, docker_save
from tusk.pipelines.runtimes import BwrapRuntime

WORKSHOP = Path(__file__).parents[1] / "data" / "regression-workshop"
pytestmark = [pytest.mark.skipif(not BwrapRuntime.available(), reason="needs bubblewrap (user namespaces)"),
              pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc and a static libc (libc6-dev)")]


def _binary(tmp: Path, source: str, name: str, *flags: str) -> bytes:
    out = tmp / name
    subprocess.run(["gcc", "-static", "-O2", *flags, "-o", str(out), str(WORKSHOP / source)], check=True)
    return out.read_bytes()


@pytest.fixture
def tusk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Run]:
    monkeypatch.chdir(tmp_path)
    yield cli_runner({"TUSK_HOME": str(tmp_path / "home"), "TUSK_USER": "workshop"}, monkeypatch, capsys)


def _diabetes(path: Path) -> None:
    """diabetes.csv's columns; progression y = 152 + 950 bmi + 480 ltg (+ noise), attributes scaled as there."""
    rng = random.Random(7)
    lines = ["age,sex,bmi,map,tc,ldl,hdl,tch,ltg,glu,y"]
    for _ in range(300):
        cols = [rng.uniform(-0.1, 0.1) for _ in range(10)]
        y = 152 + 950 * cols[2] + 480 * cols[8] + rng.gauss(0, 2)
        lines.append(",".join(f"{v:.6f}" for v in [*cols, y]))
    path.write_text("\n".join(lines) + "\n")


def _predicted(model: dict[str, object], attrs: dict[str, float]) -> float:
    coefs = model["coefficients"]
    assert isinstance(coefs, list)
    return float(model["intercept"]) + sum(c["coefficient"] * attrs[c["name"]] for c in coefs)  # type: ignore[arg-type]


def test_the_regression_workshop_with_compiled_code_in_images(tusk: Run, tmp_path: Path) -> None:
    # the workshop's images: FROM alpine (busybox here), ADD goregtrain / (and goregpredict)
    base = busybox_layer()
    images = {
        "dwhitena/goregtrain:single": _binary(tmp_path, "goregtrain.c", "single"),
        "dwhitena/goregtrain:multi": _binary(tmp_path, "goregtrain.c", "multi", "-DMULTI"),
        "dwhitena/goregpredict": _binary(tmp_path, "goregpredict.c", "predict"),
    }
    for tag, binary in images.items():
        name = "/goregpredict" if "predict" in tag else "/goregtrain"
        archive = docker_save(tmp_path / f"{tag.replace('/', '_')}.tar", tag, [base, {name.lstrip("/"): binary}])
        imported = tusk("image", "import", str(archive))
        assert imported.code == 0, imported.err

    _diabetes(tmp_path / "diabetes.csv")
    attributes = {f"{i}.json": {"age": 0.03, "sex": 0.05, "bmi": bmi, "map": 0.02, "ltg": ltg}
                  for i, (bmi, ltg) in enumerate([(0.06, 0.02), (-0.05, -0.07), (0.01, 0.09)], 1)}
    assert tusk("create-repo", "training").code == 0
    assert tusk("create-repo", "attributes").code == 0
    put = tusk("put-file", "training", "master", "diabetes.csv", "-c", "-f", "diabetes.csv")
    assert put.code == 0, put.err
    for name, attrs in attributes.items():
        (tmp_path / name).write_text(json.dumps(attrs))
        assert tusk("put-file", "attributes", "master", name, "-c", "-f", name).code == 0

    train = tmp_path / "train.json"
    train.write_text((WORKSHOP / "train.json").read_text())
    shutil.copy(WORKSHOP / "predict.json", tmp_path / "predict.json")
    created = tusk("create-pipeline", "-f", "train.json")
    assert created.code == 0, created.err
    assert tusk("create-pipeline", "-f", "predict.json").code == 0
    jobs = tusk("list-job", "--raw").json()
    assert isinstance(jobs, list) and {j["state"] for j in jobs} == {"success"}, jobs

    single = json.loads(tusk("get-file", "model", "master", "model.json").out)
    assert [c["name"] for c in single["coefficients"]] == ["bmi"]
    assert abs(single["coefficients"][0]["coefficient"] - 950) < 60
    before = {n: json.loads(tusk("get-file", "prediction", "master", n).out)["predicted_diabetes_progression"]
              for n in attributes}
    for n, attrs in attributes.items():
        assert abs(before[n] - _predicted(single, attrs)) < 0.01

    # exercise 3: only the image tag changes; the new version reprocesses with the new binary
    train.write_text(train.read_text().replace("goregtrain:single", "goregtrain:multi"))
    updated = tusk("update-pipeline", "-f", "train.json")
    assert updated.code == 0, updated.err
    multi = json.loads(tusk("get-file", "model", "master", "model.json").out)
    assert [c["name"] for c in multi["coefficients"]] == ["bmi", "ltg"]
    assert abs(multi["coefficients"][1]["coefficient"] - 480) < 40
    after = {n: json.loads(tusk("get-file", "prediction", "master", n).out)["predicted_diabetes_progression"]
             for n in attributes}
    for n, attrs in attributes.items():
        assert abs(after[n] - _predicted(multi, attrs)) < 0.01
    assert after != before
    inspected = tusk("inspect-pipeline", "model", "--raw").json()
    assert isinstance(inspected, dict)
    multi_id = tusk("image", "inspect", "dwhitena/goregtrain:multi", "--json").json()
    assert isinstance(multi_id, dict) and inspected["code"]["image"]["id"] == multi_id["id"]
