"""``tusk auth``: log in with a token, who am I, tokens and roles. A thin layer over ``tusk.Client``."""

from __future__ import annotations

import os

import typer

from tusk.cli._state import emit, say, state
from tusk.config import TOKEN_FILE
from tusk.errors import InvalidArgument

app = typer.Typer(help="Tokens and roles (server mode with --auth).", no_args_is_help=True)
token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
role_app = typer.Typer(help="Give users roles on repos, deployments and the cluster.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(role_app, name="role")

_TOKEN_COLUMNS = ["id", "user", "description", "created_at", "expires_at", "revoked_at"]


@app.command("activate")
def activate(admin: str = typer.Option(..., "--admin", help="the first cluster admin's user name")) -> None:
    """Turn auth on for this store: make the first admin and print their token (once). Run where the database
    is, without TUSK_ADDRESS; then start the server with --auth."""
    info, token = state.client.activate_auth(admin)
    _print_token(info.id, info.user, token)


@app.command("login")
def login(token: str = typer.Option(None, "--token", help="an API token (prompted for if omitted)")) -> None:
    """Check a token against the server and keep it in $TUSK_HOME/token for later commands."""
    client = state.client
    if not client.remote:
        raise InvalidArgument("log in to a server: set TUSK_ADDRESS=http://host:port first")
    token = token or typer.prompt("token", hide_input=True)
    from dataclasses import replace

    from tusk.sdk import Client

    probe = Client(settings=replace(client.settings, token=token))
    try:
        me = probe.whoami()
    finally:
        probe.close()
    home = client.settings.home
    home.mkdir(parents=True, exist_ok=True)
    path = home / TOKEN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    say(f"logged in to {client.settings.address} as {me['user']} (token kept in {path})")


@app.command("logout")
def logout() -> None:
    """Forget the token kept by `tusk auth login`."""
    path = state.client.settings.home / TOKEN_FILE
    path.unlink(missing_ok=True)
    say("logged out")


@app.command("whoami")
def whoami() -> None:
    me = state.client.whoami()
    emit(me, ["user", "admin", "auth_enabled"])


def _print_token(token_id: str, user: str, token: str) -> None:
    if state.json:
        emit({"id": token_id, "user": user, "token": token}, ["id", "user", "token"])
    else:
        say(f"token {token_id} for {user} (shown once; keep it secret):\n{token}")


@app.command("s3-credentials")
def s3_credentials(token: str | None = typer.Argument(None, metavar="[TOKEN]",
                                               help="a token (default: TUSK_TOKEN or the logged-in one)")) -> None:
    """The AWS keys for the S3 gateway (`tusk server`, port 30600), derived from a token: `eval $(tusk auth
    s3-credentials)` sets them for boto3 and the AWS CLI."""
    from tusk.config import Settings
    from tusk.s3gateway.credentials import s3_credentials as derive

    token = token or Settings.from_env().token
    if token is None or not token:
        raise InvalidArgument("no token: pass one, set TUSK_TOKEN, or run `tusk auth login`")
    key_id, secret = derive(token)
    if state.json:
        emit({"access_key_id": key_id, "secret_access_key": secret}, ["access_key_id", "secret_access_key"])
    else:
        say(f"export AWS_ACCESS_KEY_ID={key_id}\nexport AWS_SECRET_ACCESS_KEY={secret}")


@token_app.command("create")
def token_create(user: str = typer.Option(None, "--user", help="whose token (default: yours; admins only)"),
                 description: str = typer.Option("", "--description", "-d"),
                 ttl: float = typer.Option(None, "--ttl", help="seconds until it expires")) -> None:
    info, token = state.client.create_token(user, description, ttl)
    _print_token(info.id, info.user, token)


@token_app.command("list")
def token_list(user: str = typer.Option(None, "--user")) -> None:
    emit(state.client.list_tokens(user), _TOKEN_COLUMNS)


@token_app.command("revoke")
def token_revoke(token_id: str = typer.Argument(..., metavar="TOKEN_ID")) -> None:
    info = state.client.revoke_token(token_id)
    if not state.json:
        say(f"token {info.id} of {info.user} revoked")
    else:
        emit(info, _TOKEN_COLUMNS)


@role_app.command("set")
def role_set(resource: str = typer.Argument(..., help="a repo, deployment/NAME, algorithm/OWNER/NAME, or '*'"),
             user: str = typer.Argument(...),
             role: str = typer.Argument(..., help="reader | writer | owner | admin (on '*') | none")) -> None:
    binding = state.client.set_role(resource, user, role)
    if state.json:
        emit(binding or {"resource": resource, "user": user, "role": None}, ["resource", "user", "role"])
    else:
        say(f"{user} is now {role} on {resource}" if binding else f"{user} has no role on {resource}")


@role_app.command("list")
def role_list(resource: str = typer.Option(None, "--resource"), user: str = typer.Option(None, "--user")) -> None:
    emit(state.client.list_roles(resource, user), ["resource", "user", "role", "created_by", "created_at"])
