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


def test_the_remote_client_overrides_every_public_client_method() -> None:
    """A method the RemoteClient inherited would run against services it does not have."""
    from tusk.sdk import Client
    from tusk.sdk._remote import RemoteClient

    # raise_for_jobs only reads last_jobs and calls list_datums (which the RemoteClient overrides)
    public = {n for n in dir(Client) if not n.startswith("_")} - {"settings", "run_jobs", "job_progress",
                                                                   "raise_for_jobs"}
    def owner(name: str) -> type:  # the class RemoteClient takes the method from
        return next(k for k in RemoteClient.__mro__ if name in vars(k))

    # its own, or a remote half of a mixin (RemoteSecretMethods, RemoteImageMethods)
    inherited = sorted(n for n in public if not (owner(n) is RemoteClient or owner(n).__name__.startswith("Remote")))
    assert inherited == [], f"RemoteClient does not override: {inherited}"


def test_client_is_remote_exactly_when_an_address_is_set(tmp_path: object) -> None:
    from pathlib import Path

    from tusk.config import Settings
    from tusk.sdk import Client
    from tusk.sdk._remote import RemoteClient

    remote = Client(settings=Settings.from_env(env={"TUSK_ADDRESS": "http://127.0.0.1:9", "TUSK_HOME": "/nonexistent"}))
    assert isinstance(remote, RemoteClient) and remote.remote
    remote.close()
    with Client(home=Path(str(tmp_path))) as local:
        assert not isinstance(local, RemoteClient) and not local.remote
