"""The S3 gateway: Tusk's repos as S3 buckets, for any S3 client (boto3, the AWS CLI, s3fs, Spark...).

Buckets are ``branch.repo`` (read-write: each write is one commit) and ``commit.repo`` (read-only), as in
Pachyderm. ``tusk server`` serves it on port 30600 (``--s3-port N``, ``--no-s3``); requests are signed with
SigV4, with keys derived from Tusk tokens (``tusk.s3gateway.credentials``). See docs/s3-gateway.md.

Modules: ``app`` (routing, authentication), ``reads`` and ``writes`` (the operations), ``buckets`` (names),
``listing`` (ListObjects pages), ``multipart`` (uploads spooled to disk), ``payloads`` (aws-chunked bodies
and their checks), ``sigv4`` (signatures), ``credentials`` (keys from tokens), ``xmldocs``, ``errors``,
``datums`` and ``outbucket`` (a datum's endpoint, for ``input.pfs.s3``
and ``s3_out``).
"""

from tusk.s3gateway.app import create_s3_app
from tusk.s3gateway.credentials import s3_credentials
from tusk.s3gateway.datums import datum_gateways

__all__ = ["DEFAULT_PORT", "create_s3_app", "datum_gateways", "s3_credentials"]

DEFAULT_PORT = 30600  # Pachyderm's, and `tusk server`'s default
