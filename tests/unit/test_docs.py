"""Settings and CLI nouns are documented (datasette's habit: undocumented is a bug)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_the_readme() -> None:
    config = (ROOT / "src" / "tusk" / "config.py").read_text()
    readme = (ROOT / "README.md").read_text()
    for name in sorted(set(re.findall(r'"(TUSK_[A-Z_]+)"', config))):
        assert name in readme, f"{name} is read in config.py but not documented in README.md"


def test_every_cli_noun_appears_in_the_readme() -> None:
    from tusk.cli.main import NOUNS

    readme = (ROOT / "README.md").read_text()
    for noun in NOUNS:
        assert re.search(rf"tusk (\w+ )?{noun}\b", readme), f"`tusk ... {noun}` is not shown in README.md"
