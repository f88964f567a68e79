"""Print the tables of every Pachyderm spec field and every pachctl command and what Tusk does with each, or
with --write refresh the copies in docs/pachyderm.md (between its ``<!-- fields:start -->`` and
``<!-- fields:end -->``, ``<!-- commands:start -->`` and ``<!-- commands:end -->`` markers).

tests/unit/test_pachyderm_catalogue.py compares the two, so the table follows the code (``RULES`` and the
spec's models), never a hand-edited list.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tusk.cli.pachctl import render_commands
from tusk.pipelines.catalogue import render_table

DOC = Path(__file__).resolve().parent.parent / "docs" / "pachyderm.md"


def _section(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name}:start -->\n", f"<!-- {name}:end -->\n"
    head, found, rest = text.partition(start)
    if not found:
        raise SystemExit(f"docs/pachyderm.md has no {start.strip()} marker")
    _, _, tail = rest.partition(end)
    return head + start + body + end + tail


def with_table(text: str) -> str:
    return _section(_section(text, "fields", render_table()), "commands", render_commands())


if __name__ == "__main__":
    if "--write" in sys.argv:
        DOC.write_text(with_table(DOC.read_text()))
        print(f"wrote {DOC}")
    else:
        sys.stdout.write(render_commands() + "\n" + render_table())
