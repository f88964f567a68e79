"""S3 access keys from Tusk API tokens.

A token is ``tusk_<id>_<secret>``, and the server keeps only a hash of the secret. SigV4 is an HMAC, so the
server must hold the signing secret itself: the secret access key is derived from that stored hash, under a
domain of its own, and a client derives the same value from its token::

    access key id      = <id>                                  (as `tusk auth token list` shows it)
    secret access key  = BLAKE3("tusk-s3-secret:v1\\0" + BLAKE3("tusk-token:v1\\0" + secret))   (hex)

``python -m tusk.s3gateway.credentials [TOKEN]`` prints both as AWS_* variables (the token defaults to the
one you are logged in with). Revoking or expiring the token ends its S3 key too. What this costs: whoever
reads the token table can sign S3 requests as its users (not REST calls); see docs/decisions.
"""

from __future__ import annotations

import sys

import blake3

from tusk.auth.tokens import _hash, _info  # the stored hash of a token's secret: the key's root
from tusk.errors import InvalidArgument
from tusk.s3gateway.errors import S3Error
from tusk.storage.metadata import ApiTokenRow
from tusk.versioning.context import Context

__all__ = ["lookup_secret", "main", "s3_credentials"]

_PREFIX = "tusk_"


def _secret_from_hash(secret_hash: str) -> str:
    return blake3.blake3(b"tusk-s3-secret:v1\0" + secret_hash.encode()).hexdigest()


def s3_credentials(token: str) -> tuple[str, str]:
    """(access key id, secret access key) for a Tusk API token."""
    token_id, _, secret = token.removeprefix(_PREFIX).partition("_")
    if not token.startswith(_PREFIX) or not token_id or not secret:
        raise InvalidArgument("that is not a Tusk API token (tusk_<id>_<secret>); create one with "
                              "`tusk auth token create`")
    return token_id, _secret_from_hash(_hash(secret))


def lookup_secret(ctx: Context, access_key: str) -> tuple[str, str]:
    """(user, secret access key) of an access key id; InvalidAccessKeyId if no active token has that id."""
    with ctx.db.read() as s:
        row = s.get(ApiTokenRow, access_key)
        if row is None:
            raise S3Error("InvalidAccessKeyId", f"the access key id {access_key!r} is not a Tusk token id: "
                                                "derive your keys with `python -m tusk.s3gateway.credentials`")
        info = _info(row)
        secret_hash = row.secret_hash
    if not info.active:
        why = "was revoked" if info.revoked_at is not None else "has expired"
        raise S3Error("InvalidAccessKeyId", f"the token {access_key} {why}: derive keys from another token")
    return info.user, _secret_from_hash(secret_hash)


def main(argv: list[str] | None = None) -> int:
    """Print AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for a token (argument, else the logged-in one)."""
    from tusk.config import Settings

    args = sys.argv[1:] if argv is None else argv
    token = args[0] if args else Settings.from_env().token
    if not token:
        print("no token: pass one, set TUSK_TOKEN, or run `tusk auth login`", file=sys.stderr)
        return 2
    try:
        key_id, secret = s3_credentials(token)
    except InvalidArgument as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"AWS_ACCESS_KEY_ID={key_id}\nAWS_SECRET_ACCESS_KEY={secret}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
