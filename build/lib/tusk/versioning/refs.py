"""Parsing ``repo@ref[:path]`` where ref is a branch or commit id with ancestry.

Ancestry follows git and pachctl: ``master^`` is the parent of master's head,
``master^3`` (or ``master~3``) is three commits back; suffixes may repeat
(``master^^``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tusk.errors import InvalidArgument, InvalidRef
from tusk.ids import normalize_path, validate_repo_name

__all__ = ["FileRef", "parse_file_ref", "parse_ref"]

_ANCESTRY = re.compile(r"((?:[\^~]\d*)+)$")


@dataclass(frozen=True)
class FileRef:
    repo: str
    ref: str  # branch name or commit id, without ancestry
    ancestry: int = 0
    path: str = "/"
    has_path: bool = False

    @property
    def ref_text(self) -> str:
        return self.ref + (f"^{self.ancestry}" if self.ancestry else "")

    def __str__(self) -> str:
        return f"{self.repo}@{self.ref_text}" + (f":{self.path}" if self.has_path else "")


def _ancestry(suffix: str, text: str) -> int:
    total = 0
    for m in re.finditer(r"([\^~])(\d*)", suffix):
        total += int(m.group(2)) if m.group(2) else 1
    if total < 0:
        raise InvalidRef(f"invalid ancestry in {text!r}")
    return total


def parse_ref(text: str, default_branch: str | None = "master") -> tuple[str, str, int]:
    """``repo[@ref]`` → (repo, ref, ancestry)."""
    repo, sep, ref = text.partition("@")
    if not repo:
        raise InvalidRef(f"invalid reference {text!r}: expected REPO@BRANCH or REPO@COMMIT")
    try:
        validate_repo_name(repo)
    except InvalidArgument as exc:
        raise InvalidRef(f"invalid reference {text!r}: {exc}") from None
    if not sep:
        if default_branch is None:
            raise InvalidRef(f"invalid reference {text!r}: expected REPO@BRANCH or REPO@COMMIT")
        return repo, default_branch, 0
    ancestry = 0
    m = _ANCESTRY.search(ref)
    if m:
        ancestry = _ancestry(m.group(1), text)
        ref = ref[: m.start()]
    if not ref or not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", ref):
        raise InvalidRef(
            f"invalid reference {text!r}: {ref or 'an empty ref'!r} is not a branch name or commit id"
        )
    return repo, ref, ancestry


def parse_file_ref(text: str, default_branch: str | None = "master") -> FileRef:
    """``repo@ref:/path`` (path optional, defaults to ``/``)."""
    head, sep, path = text.partition(":")
    repo, ref, ancestry = parse_ref(head, default_branch)
    return FileRef(repo, ref, ancestry, normalize_path(path) if sep else "/", has_path=bool(sep and path))
