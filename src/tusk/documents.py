"""Reading spec documents (JSON or YAML, one or several per file) and naming the fields that fail validation.

Shared by pipeline specs, deployment specs and algorithm descriptors, so every
kind of spec reports a typo the same way: ``field.path: what is wrong``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tusk.errors import InvalidArgument

__all__ = ["describe_validation_error", "load_documents", "parse_documents"]


def describe_validation_error(exc: ValidationError, kind: str, source: str = "", unknown_hint: str = "") -> str:
    """``invalid <kind><source>: a.b: msg; c: msg`` with every failing field's path."""
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-")) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field" + (f" ({unknown_hint})" if unknown_hint else "")
        elif err["type"] == "missing":
            msg = "required field is missing"
        lines.append(f"{path}: {msg}")
    return f"invalid {kind}{source}: " + "; ".join(lines)


_SEPARATOR = re.compile(r"---[ \t]*(#[^\n]*)?(\n|$)")  # a YAML document marker, between JSON documents too


def parse_documents(text: str, yaml_syntax: bool, where: str = "") -> list[Any]:
    """Every document in ``text``: YAML (``---`` separated), or JSON values one after another (as
    ``pachctl create pipeline -f`` reads them), optionally separated by ``---`` lines as YAML's are."""
    if yaml_syntax:
        import yaml

        try:
            return [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as exc:  # one line: the problem and where it is, not the excerpt under it
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise InvalidArgument(f"invalid YAML{where}{at}: {problem}; fix the syntax there") from None
    decoder = json.JSONDecoder()
    docs: list[Any] = []
    pos = 0
    try:
        while pos < len(text):
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if (marker := _SEPARATOR.match(text, pos)) is not None:
                pos = marker.end()
                continue
            if pos == len(text):
                break
            doc, pos = decoder.raw_decode(text, pos)
            docs.append(doc)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"invalid JSON{where}: {exc}") from None
    return docs


def load_documents(path: Path, kind: str) -> list[Any]:
    """The documents of a JSON or YAML file (by suffix); an error if there are none."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidArgument(f"cannot read {kind} {path}: {exc.strerror}") from None
    where = f" in {path}"
    docs = parse_documents(text, path.suffix.lower() in (".yaml", ".yml"), where)
    if not docs:
        raise InvalidArgument(f"no {kind}{where}")
    return docs
