"""Tiny binary PGM (P5) reader/writer, so the example needs nothing but Python."""

from __future__ import annotations


def read(path: str) -> tuple[int, int, list[list[int]]]:
    data = open(path, "rb").read()
    parts = data.split(maxsplit=4)
    if parts[0] != b"P5":
        raise SystemExit(f"{path}: not a binary PGM")
    width, height, raw = int(parts[1]), int(parts[2]), parts[4]
    return width, height, [list(raw[y * width:(y + 1) * width]) for y in range(height)]


def write(path: str, rows: list[list[int]]) -> None:
    height, width = len(rows), len(rows[0])
    with open(path, "wb") as out:
        out.write(f"P5 {width} {height} 255\n".encode())
        out.write(bytes(max(0, min(255, v)) for row in rows for v in row))
