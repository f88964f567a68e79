"""Every error class is in ``tusk.errors``, drawn in its docstring, and raised remotely as it is embedded."""

from __future__ import annotations

import httpx
import pytest

import tusk.errors as errors
from tusk.errors import TuskError
from tusk.sdk._http import _raise


def _classes() -> list[type[TuskError]]:
    found: list[type[TuskError]] = []
    todo: list[type[TuskError]] = [TuskError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return [c for c in found if c.__module__ == "tusk.errors"]


def test_every_error_class_lives_in_errors_and_its_tree() -> None:
    import tusk.api.app
    import tusk.cli.main
    import tusk.serving.app  # noqa: F401

    strays = [f"{c.__module__}.{c.__name__}" for c in TuskError.__subclasses__() if c.__module__ != "tusk.errors"]
    assert strays == []
    doc = errors.__doc__ or ""
    for cls in _classes():
        assert cls.__name__ in errors.__all__ or cls is TuskError
        assert f" {cls.__name__}" in doc, f"{cls.__name__} is not drawn in the errors.py tree"


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_each_class_crosses_the_http_transport(cls: type[TuskError]) -> None:
    response = httpx.Response(cls.http_status, json={"error": "what went wrong", "error_type": cls.__name__},
                              request=httpx.Request("GET", "http://tusk/api/v1/x"))
    with pytest.raises(cls, match="what went wrong") as info:
        _raise(response)
    assert type(info.value) is cls
