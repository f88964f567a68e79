"""The tusk CLI run in-process by tests: each call's exit code and what it printed, in a clean TUSK_ environment."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pytest

from tusk.cli.main import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)


Run = Callable[..., Result]


def cli_runner(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """``run("repo", "list")`` with only ``env``'s TUSK_ variables set (none of the caller's own leak in)."""
    for key in list(os.environ):
        if key.startswith("TUSK_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    def run(*args: str, stdin: bytes | None = None) -> Result:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
