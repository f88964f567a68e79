"""Which predictor serves a request: canary and A/B splits with sticky routing, as pure functions.

- A client that carries the deployment's cookie keeps its predictor while that
  predictor still takes traffic (weight above 0).
- A request with a routing key (``X-Tusk-Route-Key``, e.g. a user id) is
  hashed onto the weights, so the same key lands on the same predictor from
  any server process, with no shared state.
- Anything else draws at random in proportion to the weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import blake3

__all__ = ["choose", "cookie_name", "key_point", "pick"]


def key_point(key: str) -> float:
    """A stable point in [0, 1) for a routing key."""
    return int.from_bytes(blake3.blake3(key.encode()).digest(8), "big") / 2**64


def pick(weights: Sequence[tuple[str, float]], point: float) -> str:
    """The predictor whose share of the weight line [0, 1) contains ``point``."""
    total = sum(w for _, w in weights)
    if total <= 0:
        raise ValueError("no predictor takes traffic")
    edge = 0.0
    for name, weight in weights:
        edge += weight / total
        if point < edge and weight > 0:
            return name
    return next(name for name, weight in reversed(weights) if weight > 0)


def choose(weights: Sequence[tuple[str, float]], *, draw: float, key: str | None = None,
           pinned: str | None = None) -> str:
    """Cookie pin, else the routing key's point, else ``draw`` (uniform in [0, 1))."""
    if pinned is not None and any(name == pinned and w > 0 for name, w in weights):
        return pinned
    return pick(weights, key_point(key) if key else draw)


def cookie_name(deployment: str) -> str:
    return f"tusk-route-{deployment}"
