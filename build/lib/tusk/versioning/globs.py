"""Pachyderm-style globs over ``/a/b`` paths, matched in bounded time.

``*`` and ``?`` never cross ``/``, ``**`` matches any depth, ``[...]`` (``[!...]``
negated) is one character other than ``/``, and parentheses are capture groups
(for ``join_on`` / ``group_by``). Everything else is literal.

A glob is user input that runs against every path of a commit, so its cost
must not depend on how cleverly it is written. Backtracking regexes cost
O(n^k) for k wildcards that can match the same stretch of a path
(``**a**a**a**b``); globs with at most two such wildcards (nearly all real
ones) use ``re``, the rest a Pike VM that is linear in the path
(O(len(glob) * len(path))) and gives the same captures.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tusk.errors import InvalidArgument

__all__ = ["Glob", "GlobMatch", "compile_glob"]

MAX_GLOB_LENGTH = 1024
_FAST_DEGREE = 2  # overlapping wildcards a backtracking regex may have: O(path^2) at worst

# tokens: ("lit", c) ("cls", regex) ("star",) ("dstar",) ("one",) ("open", n) ("close", n)
Token = tuple[str, ...]


@dataclass(frozen=True)
class GlobMatch:
    captures: tuple[str, ...]

    def groups(self) -> tuple[str, ...]:
        return self.captures


def _bad(pattern: str, problem: str) -> InvalidArgument:
    return InvalidArgument(f"invalid glob {pattern!r}: {problem}")


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    """The regex of the class starting at ``pattern[i] == '['`` and the index of its ``]``."""
    j = pattern.find("]", i + 1)
    if j == -1:
        raise _bad(pattern, f"'[' at position {i} has no closing ']'")
    body = pattern[i + 1 : j]
    negate = body[:1] in ("!", "^")
    body = body[1:] if negate else body
    if not body:
        raise _bad(pattern, f"empty character class at position {i}")
    parts = [c if c == "-" and 0 < k < len(body) - 1 else re.escape(c) for k, c in enumerate(body)]
    rx = f"[^/{''.join(parts)}]" if negate else f"(?!/)[{''.join(parts)}]"
    try:
        re.compile(rx)
    except re.error as exc:
        raise _bad(pattern, f"character class [{pattern[i + 1 : j]}]: {exc.msg}") from None
    return rx, j


def _tokens(pattern: str) -> tuple[list[Token], int]:
    if len(pattern) > MAX_GLOB_LENGTH:
        raise _bad(pattern[:40] + "...", f"longer than {MAX_GLOB_LENGTH} characters")
    pat = "/" + pattern.strip("/")
    out: list[Token] = []
    open_groups: list[int] = []
    groups = 0
    i = 0
    while i < len(pat):
        c = pat[i]
        if pat.startswith("**", i):
            while pat.startswith("*", i + 1):  # a run of stars is one wildcard
                i += 1
            out.append(("dstar",))
        elif c == "*":
            out.append(("star",))
        elif c == "?":
            out.append(("one",))
        elif c == "[":
            rx, i = _char_class(pat, i)
            out.append(("cls", rx))
        elif c == "(":
            groups += 1
            open_groups.append(groups)
            out.append(("open", str(groups)))
        elif c == ")":
            if not open_groups:
                raise _bad(pattern, f"')' at position {i} closes no group")
            out.append(("close", str(open_groups.pop())))
        else:
            out.append(("lit", c))
        i += 1
    if open_groups:
        raise _bad(pattern, f"{len(open_groups)} '(' without a closing ')'")
    return out, groups


def _degree(tokens: list[Token]) -> int:
    """How many wildcards can match the same stretch of a path: ``**`` anywhere, ``*`` within a component."""
    dstars = sum(t[0] == "dstar" for t in tokens)
    per_component, stars = 0, 0
    for t in tokens:
        if t == ("lit", "/"):
            stars = 0
        elif t[0] == "star":
            stars += 1
            per_component = max(per_component, stars)
    return dstars + per_component


def _regex(tokens: list[Token]) -> str:
    pieces = {"star": "[^/]*", "dstar": ".*", "one": "[^/]", "open": "(", "close": ")"}
    return "".join(re.escape(t[1]) if t[0] == "lit" else t[1] if t[0] == "cls" else pieces[t[0]]
                   for t in tokens)


class Glob:
    """A compiled glob: ``match(path)`` gives the capture groups of a full match, or None."""

    def __init__(self, pattern: str) -> None:
        tokens, self.group_count = _tokens(pattern)
        self.pattern = pattern
        self._rx: re.Pattern[str] | None = None
        self._vm: _PikeVM | None = None
        if _degree(tokens) <= _FAST_DEGREE:
            self._rx = re.compile("^" + _regex(tokens) + "$", re.DOTALL)
        else:
            self._vm = _PikeVM(tokens, self.group_count)

    def match(self, path: str) -> GlobMatch | None:
        if self._rx is not None:
            m = self._rx.match(path)
            return None if m is None else GlobMatch(tuple(m.groups()))
        assert self._vm is not None
        return self._vm.fullmatch(path)


def compile_glob(pattern: str) -> Glob:
    """Compile (and so validate) a glob; InvalidArgument names the problem."""
    return Glob(pattern)


# -- the Pike VM: threads in priority order, one per program counter, so captures equal a backtracker's ------
_Instr = tuple[str, int, int, Callable[[str], bool] | None]  # (op, arg, arg2, char test)


def _compile(tokens: list[Token]) -> list[_Instr]:
    prog: list[_Instr] = []
    for t in tokens:
        kind = t[0]
        if kind in ("star", "dstar"):
            test: Callable[[str], bool] = (lambda ch: ch != "/") if kind == "star" else (lambda ch: True)
            top = len(prog)
            prog.append(("split", top + 1, top + 3, None))  # greedy: try one more character first
            prog.append(("char", 0, 0, test))
            prog.append(("jmp", top, 0, None))
        elif kind == "one":
            prog.append(("char", 0, 0, lambda ch: ch != "/"))
        elif kind == "cls":
            cls = re.compile(t[1])
            prog.append(("char", 0, 0, lambda ch, cls=cls: cls.fullmatch(ch) is not None))  # type: ignore[misc]
        elif kind == "lit":
            prog.append(("char", 0, 0, lambda ch, want=t[1]: ch == want))  # type: ignore[misc]
        else:  # open/close group n: save slots 2n-2, 2n-1
            n = int(t[1])
            prog.append(("save", 2 * n - 2 if kind == "open" else 2 * n - 1, 0, None))
    prog.append(("match", 0, 0, None))
    return prog


Thread = tuple[int, tuple[int, ...]]


class _PikeVM:
    def __init__(self, tokens: list[Token], groups: int) -> None:
        self.prog = _compile(tokens)
        self.groups = groups

    def _add(self, threads: list[Thread], seen: set[int], pc: int, caps: tuple[int, ...], at: int) -> None:
        stack = [(pc, caps)]
        while stack:
            pc, caps = stack.pop()
            if pc in seen:
                continue
            seen.add(pc)
            op, a, b, _ = self.prog[pc]
            if op == "jmp":
                stack.append((a, caps))
            elif op == "split":
                stack.append((b, caps))
                stack.append((a, caps))  # popped first: the preferred branch
            elif op == "save":
                stack.append((pc + 1, (*caps[:a], at, *caps[a + 1 :])))
            else:
                threads.append((pc, caps))

    def fullmatch(self, text: str) -> GlobMatch | None:
        threads: list[Thread] = []
        self._add(threads, set(), 0, (-1,) * (2 * self.groups), 0)
        for at, ch in enumerate(text):
            following: list[Thread] = []
            seen: set[int] = set()
            for pc, caps in threads:
                op, _, _, test = self.prog[pc]
                if op == "char" and test is not None and test(ch):
                    self._add(following, seen, pc + 1, caps, at + 1)
            threads = following
            if not threads:
                return None
        for pc, caps in threads:
            if self.prog[pc][0] == "match":
                return GlobMatch(tuple(text[caps[2 * k] : caps[2 * k + 1]] for k in range(self.groups)))
        return None
