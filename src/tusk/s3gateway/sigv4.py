"""AWS Signature Version 4 as S3 checks it: the ``Authorization`` header form, the presigned-query form,
and the signatures of ``aws-chunked`` bodies (one per chunk, then one over the trailer).

Pure functions over what a request carries; nothing here knows where secrets come from
(``tusk.s3gateway.credentials``) or how a body is read (``tusk.s3gateway.payloads``). The canonical
request is built from the path exactly as the client sent it (S3 signers do not normalize it), with a
re-encoded spelling tried second, for clients that escape a few characters differently than they sign.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

from tusk.s3gateway.errors import S3Error

__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "STREAMING_SIGNED",
    "STREAMING_SIGNED_TRAILER",
    "STREAMING_UNSIGNED_TRAILER",
    "UNSIGNED",
    "Credential",
    "Signature",
    "canonical_query",
    "canonical_request",
    "chunk_signature",
    "parse_query",
    "parse_signature",
    "signing_key",
    "string_to_sign",
    "trailer_signature",
    "verify",
]

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_SKEW = timedelta(minutes=15)  # as S3: a signed request older or newer than this is refused
MAX_EXPIRES = 7 * 24 * 3600  # a presigned URL lives at most a week, as in S3
_DATE = "%Y%m%dT%H%M%SZ"
_SAFE = "-_.~"  # RFC 3986 unreserved characters besides letters and digits


@dataclass(frozen=True)
class Credential:
    """``AKID/20240101/us-east-1/s3/aws4_request``: who signs, and the scope of the key they derived."""

    access_key: str
    date: str
    region: str
    service: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


@dataclass(frozen=True)
class Signature:
    """What a request's signature claims, from its ``Authorization`` header or its presigned query."""

    credential: Credential
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str  # 20240101T000000Z
    payload: str  # x-amz-content-sha256: a hex digest, UNSIGNED-PAYLOAD or one of the STREAMING-... modes
    presigned: bool = False
    expires: int = 0  # presigned only: seconds the URL is valid from amz_date


def parse_query(raw: str) -> list[tuple[str, str]]:
    """``a=1&b&c=%2F`` → decoded pairs, in order (``+`` stays ``+``: signers send a space as ``%20``)."""
    pairs = []
    for part in raw.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def _parse_credential(text: str) -> Credential:
    parts = text.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not parts[0]:
        raise S3Error("AuthorizationHeaderMalformed",
                      f"malformed credential {text!r}: expected AKID/YYYYMMDD/REGION/s3/aws4_request")
    return Credential(*parts[:4])


def parse_signature(headers: Mapping[str, str], query: Sequence[tuple[str, str]]) -> Signature | None:
    """The signature a request carries, or None for an anonymous request. ``headers`` has lowercase names."""
    auth = headers.get("authorization", "")
    params = dict(query)
    if auth:
        algorithm, _, rest = auth.partition(" ")
        if algorithm != ALGORITHM:
            raise S3Error("InvalidRequest", f"unsupported authorization {algorithm!r}: sign requests with AWS "
                                            "Signature Version 4 (AWS4-HMAC-SHA256), the default of every AWS SDK")
        fields = {}
        for item in rest.split(","):
            name, _, value = item.strip().partition("=")
            fields[name] = value
        missing = [f for f in ("Credential", "SignedHeaders", "Signature") if not fields.get(f)]
        amz_date = headers.get("x-amz-date", "")
        if missing or not amz_date:
            raise S3Error("InvalidArgument", "malformed Authorization header: missing "
                                             f"{', '.join(missing) or 'the x-amz-date header'}")
        payload = headers.get("x-amz-content-sha256", "")
        if not payload:
            raise S3Error("InvalidRequest", "missing x-amz-content-sha256: S3 requests signed with SigV4 carry the "
                                            "payload's SHA-256, UNSIGNED-PAYLOAD or a STREAMING-... mode")
        return Signature(_parse_credential(fields["Credential"]), tuple(fields["SignedHeaders"].split(";")),
                         fields["Signature"], amz_date, payload)
    if "X-Amz-Algorithm" in params or "X-Amz-Signature" in params:
        if params.get("X-Amz-Algorithm") != ALGORITHM:
            raise S3Error("InvalidRequest", f"unsupported X-Amz-Algorithm {params.get('X-Amz-Algorithm')!r}: "
                                            f"presign with {ALGORITHM}")
        missing = [f for f in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature",
                               "X-Amz-Expires") if not params.get(f)]
        if missing:
            raise S3Error("InvalidArgument", f"malformed presigned URL: missing {', '.join(missing)}")
        try:
            expires = int(params["X-Amz-Expires"])
        except ValueError:
            raise S3Error("InvalidArgument", "X-Amz-Expires must be a number of seconds") from None
        if not 0 < expires <= MAX_EXPIRES:
            raise S3Error("InvalidArgument", f"X-Amz-Expires must be between 1 and {MAX_EXPIRES} seconds")
        return Signature(_parse_credential(params["X-Amz-Credential"]),
                         tuple(params["X-Amz-SignedHeaders"].split(";")), params["X-Amz-Signature"],
                         params["X-Amz-Date"], params.get("X-Amz-Content-Sha256", UNSIGNED), True, expires)
    if "AWSAccessKeyId" in params or auth.startswith("AWS "):
        raise S3Error("InvalidRequest", "Signature Version 2 is not supported: sign with SigV4 (boto3 presigns "
                                        "with SigV2 unless given Config(signature_version='s3v4'))")
    return None


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def canonical_query(query: Sequence[tuple[str, str]], presigned: bool) -> str:
    pairs = sorted((quote(k, safe=_SAFE), quote(v, safe=_SAFE)) for k, v in query
                   if not (presigned and k == "X-Amz-Signature"))
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_request(method: str, path: str, query: Sequence[tuple[str, str]],
                      headers: Mapping[str, Sequence[str]], signed: Sequence[str], payload: str,
                      presigned: bool = False) -> str:
    """The canonical request; ``headers`` maps each lowercase name to its values, in order."""
    lines = []
    for name in signed:
        values = headers.get(name)
        if values is None:
            raise S3Error("AccessDenied", f"the signature covers the header {name!r}, which the request lacks")
        lines.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}\n")
    return "\n".join([method, path, canonical_query(query, presigned), "".join(lines), ";".join(signed), payload])


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    return "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])


def _sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _check_time(sig: Signature, now: datetime) -> None:
    try:
        when = datetime.strptime(sig.amz_date, _DATE).replace(tzinfo=UTC)
    except ValueError:
        raise S3Error("AccessDenied", f"invalid X-Amz-Date {sig.amz_date!r}: expected YYYYMMDDTHHMMSSZ") from None
    if sig.credential.date != sig.amz_date[:8]:
        raise S3Error("SignatureDoesNotMatch", "the credential's date is not the day of X-Amz-Date")
    if sig.presigned:
        if now < when - MAX_SKEW:
            raise S3Error("AccessDenied", "the presigned URL is not valid yet (its X-Amz-Date is in the future)")
        if now > when + timedelta(seconds=sig.expires):
            raise S3Error("AccessDenied", "the presigned URL has expired: presign a new one")
    elif abs(now - when) > MAX_SKEW:
        raise S3Error("RequestTimeTooSkewed", f"the request was signed at {when:%Y-%m-%d %H:%M:%S}Z, more than 15 "
                                              "minutes from the server's time: check the client's clock")


def verify(sig: Signature, secret: str, method: str, raw_path: str, query: Sequence[tuple[str, str]],
           headers: Mapping[str, Sequence[str]], now: datetime | None = None) -> bytes:
    """Check the signature (and its time); return the signing key, which signs an aws-chunked body's chunks."""
    _check_time(sig, now or datetime.now(UTC))
    key = signing_key(secret, sig.credential.date, sig.credential.region, sig.credential.service)
    paths = [raw_path]
    respelled = quote(unquote(raw_path), safe="/~")
    if respelled != raw_path:
        paths.append(respelled)
    for path in paths:
        canonical = canonical_request(method, path, query, headers, sig.signed_headers, sig.payload, sig.presigned)
        if hmac.compare_digest(_sign(key, string_to_sign(sig.amz_date, sig.credential.scope, canonical)),
                               sig.signature):
            return key
    raise S3Error("SignatureDoesNotMatch", "the request signature we calculated does not match the signature you "
                                           "provided: check the secret access key (derive it from your Tusk token "
                                           "with `python -m tusk.s3gateway.credentials`) and the signing method")


def chunk_signature(key: bytes, amz_date: str, scope: str, previous: str, chunk_sha256: str) -> str:
    """The signature of one chunk of a STREAMING-AWS4-HMAC-SHA256-PAYLOAD body, chained to the one before."""
    return _sign(key, "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, EMPTY_SHA256,
                                 chunk_sha256]))


def trailer_signature(key: bytes, amz_date: str, scope: str, previous: str, trailer: bytes) -> str:
    """The signature over the trailing headers of a ...-PAYLOAD-TRAILER body."""
    return _sign(key, "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, previous,
                                 hashlib.sha256(trailer).hexdigest()]))
