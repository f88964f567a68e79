"""Datums: the units of work a pipeline's input produces.

Each pfs input globs its commit's tree; every match (a file or a directory)
is one *datum input*. Combinators build datums from their children's:
``cross`` (every combination), ``union`` (all of them), ``join`` (datums whose
``join_on`` keys agree; ``outer_join`` keeps the unmatched), ``group`` (one
datum per ``group_by`` key). A datum's hash covers the input names, paths and
content digests and the pipeline's salt, so unchanged datums are recognised
and skipped on the next job.
"""

from __future__ import annotations

import itertools
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import blake3

from tusk.errors import InvalidArgument
from tusk.pipelines.spec import CronInput, Input, PfsInput
from tusk.versioning.records import InputCommit
from tusk.versioning.trees import Entry

__all__ = ["Datum", "DatumInput", "Match", "datum_hash", "enumerate_datums", "pfs_datum"]

_TAG = b"tusk-datum:v1\n"


@dataclass(frozen=True)
class Match:
    """One glob match in an input commit."""

    path: str
    entry: Entry
    groups: tuple[str, ...]


@dataclass(frozen=True)
class DatumInput:
    name: str
    repo: str
    branch: str
    commit: str
    path: str
    kind: str  # file | dir
    digest: str
    size: int
    lazy: bool = False
    empty_files: bool = False
    s3: bool = False  # served over the datum's S3 endpoint, not put at /pfs/<name> (tusk.pipelines.s3)
    join_key: str | None = None
    group_key: str | None = None

    @property
    def source(self) -> InputCommit:
        """The input commit this input's file came from."""
        return InputCommit(name=self.name, repo=self.repo, branch=self.branch, commit=self.commit)


@dataclass(frozen=True)
class Datum:
    inputs: tuple[DatumInput, ...]
    id: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        # identity of the datum's position (input names + paths), independent of content; computed once
        raw = _framed([x for i in self.inputs for x in (i.name, i.path)])
        object.__setattr__(self, "id", blake3.blake3(b"tusk-datum-id:v1\n" + raw).hexdigest()[:32])


def _framed(fields: tuple[str, ...] | list[str]) -> bytes:
    """Length-prefixed fields: unambiguous, so ("ab", "c") and ("a", "bc") hash apart."""
    out = bytearray()
    for text in fields:
        raw = text.encode()
        out += struct.pack(">I", len(raw))
        out += raw
    return bytes(out)


def datum_hash(datum: Datum, salt: str) -> str:
    """H(input names, paths, content digests, pipeline salt): same hash ⇒ same work."""
    raw = _framed([salt, *[x for i in datum.inputs for x in (i.name, i.path, i.kind, i.digest)]])
    return blake3.blake3(_TAG + raw).hexdigest()


# (repo, branch or commit, glob) -> matches; given by the caller, so this module stays pure
Globber = Callable[[PfsInput], tuple[str, list[Match]]]
_KEY = re.compile(r"\$(\d+)")


def _key(template: str | None, groups: tuple[str, ...], where: str) -> str | None:
    if template is None:
        return None

    def sub(m: re.Match[str]) -> str:
        n = int(m.group(1))
        if n < 1 or n > len(groups):
            raise InvalidArgument(f"{where}: ${n} refers to a capture group the glob does not have")
        return groups[n - 1]

    return _KEY.sub(sub, template)


def pfs_datum(inp: PfsInput, commit: str, m: Match) -> Datum:
    """The datum of one glob match of a pfs input."""
    where = f"input {inp.input_name}"
    return Datum((DatumInput(
        name=inp.input_name, repo=inp.repo, branch=inp.branch, commit=commit, path=m.path, kind=m.entry.kind,
        digest=m.entry.digest, size=m.entry.size, lazy=inp.lazy, empty_files=inp.empty_files, s3=inp.s3,
        join_key=_key(inp.join_on, m.groups, where), group_key=_key(inp.group_by, m.groups, where),
    ),))


def _pfs(inp: PfsInput, globber: Globber) -> list[Datum]:
    commit, matches = globber(inp)
    return [pfs_datum(inp, commit, m) for m in matches]


def _join(children: Sequence[list[Datum]], outer: Sequence[bool]) -> list[Datum]:
    by_key: list[dict[str | None, list[Datum]]] = []
    for datums in children:
        table: dict[str | None, list[Datum]] = {}
        for d in datums:
            table.setdefault(d.inputs[0].join_key, []).append(d)
        by_key.append(table)
    keys = sorted({k for table in by_key for k in table if k is not None})
    out = []
    for key in keys:
        present = [table.get(key, []) for table in by_key]
        if all(present):
            parts = present
        elif any(p and o for p, o in zip(present, outer, strict=True)):
            parts = [p for p, o in zip(present, outer, strict=True) if p and o] + [
                p for p, o in zip(present, outer, strict=True) if p and not o]
        else:
            continue
        for combo in itertools.product(*parts):
            out.append(Datum(tuple(i for d in combo for i in d.inputs)))
    return out


def _group(children: Sequence[list[Datum]]) -> list[Datum]:
    groups: dict[str, list[DatumInput]] = {}
    for datums in children:
        for d in datums:
            for i in d.inputs:
                if i.group_key is not None:
                    groups.setdefault(i.group_key, []).append(i)
    return [Datum(tuple(groups[k])) for k in sorted(groups)]


def enumerate_datums(inp: Input, globber: Globber, cron: Callable[[CronInput], list[Datum]] | None = None
                     ) -> list[Datum]:
    """All datums of an input tree, in a deterministic order."""
    if inp.pfs is not None:
        return _pfs(inp.pfs, globber)
    if inp.cron is not None:
        if cron is None:
            raise InvalidArgument(f"cron input {inp.cron.name} needs its tick repo")
        return cron(inp.cron)
    if inp.cross is not None:
        children = [enumerate_datums(c, globber, cron) for c in inp.cross]
        return [Datum(tuple(i for d in combo for i in d.inputs)) for combo in itertools.product(*children)]
    if inp.union is not None:
        return [d for c in inp.union for d in enumerate_datums(c, globber, cron)]
    if inp.join is not None:
        for c in inp.join:
            if c.pfs is None or c.pfs.join_on is None:
                raise InvalidArgument("every input of a join needs pfs.join_on (e.g. \"$1\")")
        children = [enumerate_datums(c, globber, cron) for c in inp.join]
        return _join(children, [bool(c.pfs and c.pfs.outer_join) for c in inp.join])
    assert inp.group is not None
    for c in inp.group:
        if c.pfs is None or c.pfs.group_by is None:
            raise InvalidArgument("every input of a group needs pfs.group_by (e.g. \"$1\")")
    return _group([enumerate_datums(c, globber, cron) for c in inp.group])
