"""The datums of an input that changed between two versions of its input commits, for every kind of input.

A job whose pipeline's output came from a job over the same spec takes its datums as changes from that job
(``JobService._changed_datums``, decisions 0027 and 0028). This module says which datums those are, from the
changes of each pfs input (``TreeStore.glob_changes``: only the paths the commits changed are looked at):

- a **pfs** input's changes are its changed glob matches;
- a **union**'s are its children's (their datums are theirs, and input names are unique, so ids do not meet);
- a **cross**'s are the combinations with at least one changed component, each made once (by its first changed
  component). Only the children whose partners changed are listed in full, so a cross of a large input and a
  small one (data x model) costs the change times the small one, not the large one's size;
- a **join** or **group**, whose datums depend on keys across its children, is enumerated before and after and
  compared, but only when one of its leaves changed.

A datum is *changed* when it is there before and after with other content (``datum_hash`` would differ),
*added* when it was not there before, and *gone* when it is not there now. The module is pure: the caller gives
the leaves' changes and the globbers of both versions.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from tusk.pipelines.datums import Datum, Globber, enumerate_datums
from tusk.pipelines.spec import Input, PfsInput

__all__ = ["Changes", "LeafChanges", "datum_changes"]


@dataclass
class Changes:
    """How an input's datums changed."""

    present: list[Datum] = field(default_factory=list)  # changed or added, as they are now
    added: set[str] = field(default_factory=set)  # the ids of those of them that were not there before
    gone: list[Datum] = field(default_factory=list)  # not there now: as they were

    def __bool__(self) -> bool:
        return bool(self.present or self.gone)

    def extend(self, other: Changes) -> None:
        self.present += other.present
        self.added |= other.added
        self.gone += other.gone


LeafChanges = Callable[[PfsInput], Changes]  # a pfs input's changed glob matches


def datum_changes(inp: Input, leaf: LeafChanges, before: Globber, after: Globber) -> Changes:
    """The datums of ``inp`` that differ between the input commits ``before`` globs and those ``after`` globs;
    ``leaf`` gives a pfs input's own changes (which must agree with the two globbers). ``inp`` is an effective
    input (``Input.effective``: cron inputs read as pfs inputs)."""
    return _Changes(leaf, before, after).of(inp)


class _Changes:
    def __init__(self, leaf: LeafChanges, before: Globber, after: Globber) -> None:
        self.leaf, self.before, self.after = leaf, before, after
        self.leaves: dict[str, Changes] = {}  # each pfs input's changes, by input name: asked once

    def _leaf(self, pfs: PfsInput) -> Changes:
        if pfs.input_name not in self.leaves:
            self.leaves[pfs.input_name] = self.leaf(pfs)
        return self.leaves[pfs.input_name]

    def of(self, inp: Input) -> Changes:
        if inp.pfs is not None:
            return self._leaf(inp.pfs)
        if inp.union is not None:
            out = Changes()
            for child in inp.union:
                out.extend(self.of(child))
            return out
        if inp.cross is not None:
            return self._cross(inp.cross)
        if not any(self._leaf(leaf) for leaf in inp.leaves() if isinstance(leaf, PfsInput)):
            return Changes()  # (a join or group of unchanged inputs)
        return _compared(enumerate_datums(inp, self.before), enumerate_datums(inp, self.after))

    def _cross(self, children: Sequence[Input]) -> Changes:
        own = [self.of(c) for c in children]
        if not any(own):
            return Changes()
        # a child's whole listing, now and before, only where a combination needs it (a partner changed); an
        # unchanged child is the same before as now
        now = [_Lazy(functools.partial(enumerate_datums, c, self.after)) for c in children]
        then = [now[i] if not own[i] else _Lazy(functools.partial(enumerate_datums, c, self.before))
                for i, c in enumerate(children)]
        out = Changes()
        for i, mine in enumerate(own):
            # the combinations whose first changed component is the i-th (the children before it unchanged); and
            # those gone, whose first gone component is the i-th
            for combo in _combos([_less(now[j], {d.id for d in own[j].present}) for j in range(i)],
                                 mine.present, now[i + 1:]):
                d = _joined(combo)
                out.present.append(d)
                if any(part.id in own[k].added for k, part in enumerate(combo)):
                    out.added.add(d.id)
            for combo in _combos([_less(then[j], {d.id for d in own[j].gone}) for j in range(i)],
                                 mine.gone, then[i + 1:]):
                out.gone.append(_joined(combo))
        return out


class _Lazy:
    """A child's whole listing, made the first time it is needed."""

    def __init__(self, make: Callable[[], list[Datum]]) -> None:
        self._make = make
        self._value: list[Datum] | None = None

    def get(self) -> list[Datum]:
        if self._value is None:
            self._value = self._make()
        return self._value


def _less(listing: _Lazy, ids: set[str]) -> _Lazy:
    """A listing without these datums."""
    return listing if not ids else _Lazy(lambda: [d for d in listing.get() if d.id not in ids])


def _combos(first: list[_Lazy], middle: list[Datum], last: list[_Lazy]) -> Iterator[tuple[Datum, ...]]:
    """Every combination of a datum of each ``first`` listing, one of ``middle``, one of each ``last`` (a
    listing is read only when ``middle`` has a datum)."""
    if not middle:
        return
    lists = [x.get() for x in (*first, *last)]
    if all(lists):
        yield from itertools.product(*lists[:len(first)], middle, *lists[len(first):])


def _joined(combo: tuple[Datum, ...]) -> Datum:
    return Datum(tuple(i for d in combo for i in d.inputs))


def _content(d: Datum) -> tuple[tuple[str, str], ...]:
    """What a datum's hash covers beside its id (input names and paths) and the salt."""
    return tuple((i.kind, i.digest) for i in d.inputs)


def _compared(old: list[Datum], new: list[Datum]) -> Changes:
    """The changes between two listings of an input's datums."""
    before = {d.id: d for d in old}
    now = {d.id for d in new}
    out = Changes()
    for d in new:
        was = before.get(d.id)
        if was is None:
            out.present.append(d)
            out.added.add(d.id)
        elif _content(was) != _content(d):
            out.present.append(d)
    out.gone = [d for d in old if d.id not in now]
    return out
