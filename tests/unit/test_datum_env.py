"""``/pfs/.env`` is read as ``sh`` and shlex read it, whatever its values hold (the common lines skip shlex)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tusk.datum_batching import datum_env

VALUES = ["plain", "", "/pfs/in/a b.txt", "it's", 'say "hi"', "a#b", "#start", "$HOME", "back\\slash", "tab\there",
          "ünïcode", "=", "k=v", "'", "''", "semi;colon", "star*", "~user", "a  b"]


@pytest.mark.parametrize("value", VALUES)
def test_each_quoted_value_reads_back_as_written(tmp_path: Path, value: str) -> None:
    (tmp_path / ".env").write_text(f"first=1\nKEY={shlex.quote(value)}\nlast=z\n", encoding="utf-8")
    assert datum_env(str(tmp_path)) == {"first": "1", "KEY": value, "last": "z"}


def test_lines_of_other_shapes_read_as_shlex_reads_them(tmp_path: Path) -> None:
    lines = ["  spaced=1   # a comment", "# only a comment", "", "two=2 three=3", "quoted=\"dq $x\"",
             "mixed=a'b c'd", "noequals", "tail='t'x"]
    (tmp_path / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected: dict[str, str] = {}
    for line in lines:
        for word in shlex.split(line, comments=True):
            key, sep, value = word.partition("=")
            if sep:
                expected[key] = value
    assert datum_env(str(tmp_path)) == expected
    assert expected["three"] == "3" and expected["mixed"] == "ab cd" and "noequals" not in expected
