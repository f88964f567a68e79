"""clean: normalize text for the models downstream."""

from __future__ import annotations

import re

from tusk.errors import InputError  # a 400 for the caller: the input is wrong, not the code


def apply(texts: list[str]) -> list[str]:
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise InputError("give a JSON list of strings")
    return [re.sub(r"\s+", " ", t).strip().lower() for t in texts]
