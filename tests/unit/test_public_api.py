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


def test_the_client_offers_every_operation_and_both_transports_implement_them() -> None:
    """``Operations`` is the contract: the client exposes each of its operations, and neither transport lacks one
    (an abstract method left is a TypeError when it is built, which the other tests would hit only for the
    methods they call)."""
    from tusk.sdk import Client
    from tusk.sdk._http import HttpOperations
    from tusk.sdk._local import LocalOperations
    from tusk.sdk._operations import Operations

    operations = set(Operations.__abstractmethods__)
    public = {n for n in dir(Client) if not n.startswith("_")}
    # the transport's halves of what the client composes itself (which transaction is active, a reader)
    composed = {"open_file", "pipeline_requests"}
    assert sorted(operations - public - composed) == []
    assert LocalOperations.__abstractmethods__ == frozenset() and HttpOperations.__abstractmethods__ == frozenset()


def test_client_is_one_class_and_its_transport_is_http_exactly_when_an_address_is_set(tmp_path: object) -> None:
    from pathlib import Path

    from tusk.config import Settings
    from tusk.errors import InvalidArgument
    from tusk.sdk import Client
    from tusk.sdk._http import HttpOperations
    from tusk.sdk._local import LocalOperations

    remote = Client(settings=Settings.from_env(env={"TUSK_ADDRESS": "http://127.0.0.1:9", "TUSK_HOME": "/nonexistent"}))
    assert type(remote) is Client and isinstance(remote.transport, HttpOperations) and remote.remote
    try:
        remote.services  # noqa: B018
    except InvalidArgument as exc:
        assert "no in-process services" in str(exc)
    else:
        raise AssertionError("a remote client has no services")
    remote.close()
    with Client(home=Path(str(tmp_path))) as local:
        assert type(local) is Client and isinstance(local.transport, LocalOperations) and not local.remote


def test_a_client_given_a_transport_refuses_settings_it_would_not_use(tmp_path: object) -> None:
    from pathlib import Path

    import pytest

    from tusk.config import Settings
    from tusk.errors import InvalidArgument
    from tusk.sdk import Client
    from tusk.sdk._local import LocalOperations

    transport = LocalOperations(Settings.for_home(Path(str(tmp_path))), run_jobs=False)
    with Client(transport=transport) as c:
        assert c.transport is transport and c.run_jobs is False
    with pytest.raises(InvalidArgument, match="do not also give home, run_jobs"):
        Client(home=Path(str(tmp_path)), run_jobs=False, transport=transport)
