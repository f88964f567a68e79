"""The README runs as written: every ```bash block, in order, in a fresh TUSK_HOME.

Each block runs in its own ``bash -euo pipefail`` from the top of a scratch copy
of the checkout (``examples/``, and ``.venv`` pointing at this interpreter's
environment), so a ``cd`` in one block does not leak into the next, and any
command that fails fails the test with its output. The one substitution: ports
8080 and 30600 become free ports, so a machine with something on them can still run it.
A block is skipped only when the line before it says
``<!-- readme-test: not run (why) -->``, and then it must say why.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SKIP = re.compile(r"<!-- readme-test: not run \((.+)\) -->")
PLACEHOLDER = re.compile(r"<[a-z][a-z0-9_-]*>|\bGLOBAL_ID\b|\bJOB_ID\b|@3f2a9c|\bYOUR_")


def blocks(text: str) -> list[tuple[int, str, str | None]]:
    """(line number, shell text, reason it is not run) of every ```bash block."""
    found: list[tuple[int, str, str | None]] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```bash":
            before = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
            skip = SKIP.search(before)
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            found.append((i + 1, "\n".join(lines[i + 1:j]), skip.group(1) if skip else None))
            i = j
        i += 1
    return found


def test_the_readme_has_no_placeholders_and_says_why_a_block_is_not_run() -> None:
    found = blocks(README.read_text())
    assert len(found) >= 6
    for line, text, _ in found:
        assert not PLACEHOLDER.search(text), f"README line {line}: a placeholder in a shell block"
    skipped = [b for b in found if b[2] is not None]
    assert len(skipped) <= 2, "the README is to be run, not read"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_the_readme_runs_as_written(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")  # the diabetes example trains with scikit-learn (tusk[ml])
    if shutil.which("curl") is None:
        pytest.skip("the README's serving steps use curl")
    work = tmp_path / "checkout"
    shutil.copytree(ROOT / "examples", work / "examples", symlinks=False)
    (work / ".venv").symlink_to(Path(sys.prefix))
    ports = {"8080": str(_free_port()), "30600": str(_free_port())}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUSK_", "AWS_"))}
    env.update(HOME=str(tmp_path / "home"), TUSK_HOME=str(tmp_path / "tusk"), TUSK_CONTEXT="none",
               TUSK_CONFIG=str(tmp_path / "config.json"), TUSK_USER="readme",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    (tmp_path / "home").mkdir()
    ran = 0
    for line, text, reason in blocks(README.read_text()):
        if reason is not None:
            continue
        for fixed, free in ports.items():
            text = text.replace(fixed, free)
        # each server's gRPC port (default 8081) free too: a stopping server may still hold the last one
        text = re.sub(r"\btusk server ", lambda _: f"tusk server --grpc-port {_free_port()} "
                      f"--s3-port {_free_port()} ", text)  # (a later --s3-port in the line wins)
        script = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + text
        proc = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, (f"README block at line {line} failed (exit {proc.returncode}):\n"
                                      f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        assert "Traceback" not in proc.stdout + proc.stderr, f"README block at line {line}:\n{proc.stderr}"
        ran += 1
    assert ran >= 5
