"""Start-up: what a command loads. Heavy modules load when a command needs them, not on every command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("numpy", "pandas", "sklearn", "scipy", "fastapi", "uvicorn", "starlette", "onnxruntime", "mlflow", "dask")

_PROBE = """
import json, sys
sys.argv = ["tusk", *json.loads(sys.argv[1])]
from tusk.cli.main import main
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\\nLOADED " + json.dumps(sorted(sys.modules)) + "\\n")
"""


def _loaded(tmp_path: Path, *args: str, full: bool = False) -> set[str]:
    """The packages (with ``full``, the modules) that running ``tusk *args`` loaded."""
    env = {"TUSK_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(list(args))], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    line = [x for x in proc.stderr.splitlines() if x.startswith("LOADED ")]
    assert line, proc.stderr
    modules = json.loads(line[-1][len("LOADED "):])
    return set(modules) if full else {m.split(".")[0] for m in modules}


def test_importing_the_cli_loads_nothing_heavy(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", "import sys, tusk.cli.main; print(' '.join(sys.modules))"],
                          capture_output=True, text=True, timeout=60, check=True)
    loaded = {m.split(".")[0] for m in proc.stdout.split()}
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
    assert "sqlalchemy" not in loaded


def test_help_and_version_do_not_open_the_store(tmp_path: Path) -> None:
    for args in (["--help"], ["--version"], ["repo", "--help"], ["pipeline", "create", "--help"]):
        loaded = _loaded(tmp_path, *args)
        assert not loaded & {*HEAVY, "sqlalchemy", "alembic"}, (args, loaded & {*HEAVY, "sqlalchemy", "alembic"})
    assert not (tmp_path / "home").exists()


def test_a_data_command_loads_no_serving_or_ml_modules(tmp_path: Path) -> None:
    _loaded(tmp_path, "repo", "create", "r")  # the first open migrates the schema (Alembic)
    for args in (["repo", "list"], ["commit", "list", "r"], ["list", "file", "r@master"]):
        loaded = _loaded(tmp_path, *args)
        assert not loaded & {*HEAVY, "alembic"}, (args, loaded & {*HEAVY, "alembic"})


def test_a_commit_with_no_pipeline_running_loads_no_job_runner(tmp_path: Path) -> None:
    _loaded(tmp_path, "repo", "create", "r")
    (tmp_path / "f.txt").write_text("x")
    loaded = _loaded(tmp_path, "put", "file", "r@master:/f.txt", "-f", str(tmp_path / "f.txt"), full=True)
    assert "tusk.versioning.files" in loaded  # the put ran
    assert "tusk.pipelines.jobs" not in loaded


def test_shell_completion_answers_from_the_cli(tmp_path: Path) -> None:
    script = subprocess.run([sys.executable, "-m", "tusk", "completion", "bash"], capture_output=True, text=True,
                            timeout=60, check=True).stdout
    assert "_TUSK_COMPLETE=complete_bash" in script
    env = {"_TUSK_COMPLETE": "complete_bash", "COMP_WORDS": "tusk repo c", "COMP_CWORD": "2",
           "TUSK_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    asked = subprocess.run([sys.executable, "-m", "tusk"], capture_output=True, text=True, env=env, timeout=60,
                           check=False)
    assert asked.stdout.split() == ["create"], asked
    assert not (tmp_path / "home").exists()  # answering opens no store
