"""One ref store: outside ``tusk.versioning``, no module names the tables of heads, branches, commits, commit sets
and provenance; they ask ``tusk.versioning.refstore`` and get values back.

import-linter checks modules, not names, so this test reads every module's imports itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tusk

REF_ROWS = {"BranchRow", "BranchMoveRow", "CommitRow", "CommitSetRow", "CommitProvenanceRow"}
SRC = Path(tusk.__file__).parent


def _ref_rows_named(path: Path) -> set[str]:
    """The ref-table row classes a module imports, by any route (``from x import``, ``import x`` then
    ``x.CommitRow``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            found |= {a.name for a in node.names} & REF_ROWS
        elif isinstance(node, ast.Attribute) and node.attr in REF_ROWS:
            found.add(node.attr)
    return found


def _modules_touching_ref_rows() -> dict[str, set[str]]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("storage/metadata/"):
            continue  # where the rows are defined
        names = _ref_rows_named(path)
        if names:
            out[rel] = names
    return out


def test_no_module_outside_versioning_touches_the_ref_tables() -> None:
    outside = {m: n for m, n in _modules_touching_ref_rows().items() if not m.startswith("versioning/")}
    assert outside == {}, (f"these modules query the ref tables directly: {outside}; "
                           "ask tusk.versioning.refstore instead")


def test_the_scan_sees_an_import_of_a_ref_row(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from tusk.storage.metadata import CommitRow, JobRow\nimport tusk.storage.metadata as md\n"
                      "x = md.BranchRow\n")
    assert _ref_rows_named(module) == {"CommitRow", "BranchRow"}
