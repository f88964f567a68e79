"""What a file looks like on its page: a table (CSV/TSV), JSON, text, an image, or its size and hash.

Only the first ``LIMIT`` bytes are read; a preview of a larger file says it is cut.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["IMAGE_TYPES", "LIMIT", "Preview", "preview"]

LIMIT = 256 << 10
ROWS = 200
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp"}  # (no SVG: it may carry script)


@dataclass
class Preview:
    kind: str  # table | json | text | image | binary
    cut: bool = False  # only the start of the file is shown
    rows: list[list[str]] = field(default_factory=list)
    text: str = ""
    media_type: str = ""


def _head(chunks: Iterable[bytes]) -> tuple[bytes, bool]:
    out = bytearray()
    for chunk in chunks:
        out += chunk
        if len(out) > LIMIT:
            return bytes(out[:LIMIT]), True
    return bytes(out), False


def _suffix(path: str) -> str:
    name = path.rsplit("/", 1)[-1].lower()
    return "." + name.rsplit(".", 1)[-1] if "." in name else ""


def preview(path: str, chunks: Iterable[bytes]) -> Preview:
    suffix = _suffix(path)
    if suffix in IMAGE_TYPES:
        return Preview("image", media_type=IMAGE_TYPES[suffix])
    data, cut = _head(chunks)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not (cut and exc.start > len(data) - 4):  # a character cut at the limit is still text
            return Preview("binary")
        text = data[:exc.start].decode("utf-8")
    if "\x00" in text:
        return Preview("binary")
    if suffix in (".csv", ".tsv"):
        lines = text.splitlines()
        if cut and lines:
            lines = lines[:-1]  # the last line may be cut in half
        reader = csv.reader(io.StringIO("\n".join(lines[:ROWS + 1])), delimiter="\t" if suffix == ".tsv" else ",")
        rows = [row for row in reader]
        return Preview("table", cut or len(lines) > ROWS + 1, rows=rows)
    if suffix in (".json", ".jsonl") or (suffix == "" and text.lstrip()[:1] in ("{", "[")):
        try:
            doc: Any = json.loads(text)
        except ValueError:
            pass
        else:
            return Preview("json", text=json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False))
    return Preview("text", cut, text=text)
