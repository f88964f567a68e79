"""What code a pipeline version ran: a digest of its code directory and, when it is a git work tree, the git commit.

Recorded when a pipeline is created or updated, so that a model's manifest can
say which code trained it (issue: ML workflow). Nothing here is needed to run
a pipeline; a failure to describe the code is recorded, never raised.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3

from tusk.transfer import SKIPPED_DIRS, SKIPPED_SUFFIXES

__all__ = ["code_files", "describe_code"]

_MAX_FILES = 2000
_MAX_BYTES = 64 << 20


def _git(code_dir: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(code_dir), *args], capture_output=True, text=True, timeout=10,
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def _git_info(code_dir: Path) -> dict[str, Any] | None:
    commit = _git(code_dir, "rev-parse", "HEAD")
    if commit is None:
        return None
    ref = _git(code_dir, "rev-parse", "--abbrev-ref", "HEAD")
    return {
        "commit": commit,
        "ref": ref if ref != "HEAD" else None,
        "repo": _git(code_dir, "config", "--get", "remote.origin.url") or _git(code_dir, "rev-parse",
                                                                                 "--show-toplevel"),
        "path": _git(code_dir, "rev-parse", "--show-prefix") or "",
        "dirty": bool(_git(code_dir, "status", "--porcelain", "--", ".")),
    }


def is_tusk_home(path: Path) -> bool:
    """Whether ``path`` holds a Tusk store (its SQLite database or a machine's stat cache): never code, and
    being written while code is stored (a TUSK_HOME under the code directory would change under the put)."""
    return (path / "tusk.db").is_file() or (path / "cache" / "stat.db").is_file()


def code_files(code_dir: Path) -> Iterator[Path]:
    """The files of a code directory that count as code, in a stable order: what digests and stored trees take
    (hidden and build directories, and compiled files, are skipped as uploads skip them)."""
    for root, dirs, names in os.walk(code_dir):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(".")
                         and not is_tusk_home(Path(root) / d))
        for name in sorted(names):
            path = Path(root) / name
            if path.is_file() and path.suffix not in SKIPPED_SUFFIXES:
                yield path


def _code_digest(code_dir: Path) -> tuple[str | None, int, str | None]:
    """BLAKE3 over (relative path, bytes) of the code files, or None with the reason it was not computed."""
    files: list[Path] = []
    total = 0
    for path in code_files(code_dir):
        files.append(path)
        total += path.stat().st_size
        if len(files) > _MAX_FILES or total > _MAX_BYTES:
            return None, len(files), f"more than {_MAX_FILES} files or {_MAX_BYTES >> 20} MiB"
    h = blake3.blake3(b"tusk-code:v1\0")
    for path in files:
        rel = path.relative_to(code_dir).as_posix().encode()
        data = path.read_bytes()
        h.update(len(rel).to_bytes(4, "big") + rel + len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest(), len(files), None


def describe_code(code_dir: Path) -> dict[str, Any]:
    """{"dir", "digest", "files", "git": {commit, ref, repo, path, dirty} | None}."""
    info: dict[str, Any] = {"dir": str(code_dir)}
    if not code_dir.is_dir():
        return info | {"digest": None, "files": 0, "git": None, "note": "code directory does not exist"}
    try:
        digest, count, why = _code_digest(code_dir)
    except OSError as e:
        digest, count, why = None, 0, f"unreadable: {e}"
    info |= {"digest": digest, "files": count, "git": _git_info(code_dir)}
    if why:
        info["note"] = why
    return info
