from __future__ import annotations

import inspect

import tusk
import tusk.errors as errors


def test_public_all_is_sorted_and_complete() -> None:
    for module in (tusk, errors):
        names = module.__all__
        assert names == sorted(names)
        for name in names:
            assert hasattr(module, name)


def test_every_error_is_in_the_documented_tree() -> None:
    doc = errors.__doc__ or ""
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.TuskError)]
    for cls in classes:
        assert cls.__name__ in doc, f"{cls.__name__} missing from the tree in tusk/errors.py"
        assert cls.__name__ in errors.__all__
