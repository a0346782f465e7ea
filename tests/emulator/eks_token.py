"""Verification of EKS bearer tokens, as aws-iam-authenticator does - minus the STS call.

An EKS token is ``k8s-aws-v1.`` + base64url(presigned STS ``GetCallerIdentity``
URL), signed with SigV4 *query* authentication over the ``host`` and
``x-k8s-aws-id: <cluster name>`` headers.  The real authenticator checks the
URL's shape (``pkg/token/token.go`` ``tokenVerifier.Verify``) and then replays
it against STS with the cluster header set; STS accepts it only if the
signature covers that exact cluster name.

:class:`EksTokenVerifier` performs the same shape checks and, instead of the
STS round trip, recomputes the signature with botocore from a table of known
credentials.  So a token is accepted exactly when a client holding those
credentials presigned it for one of the emulated clusters within the last 15
minutes - which is what the Rust token generator under test must get right.

The presigned URL's host must be one of the STS endpoints of the verifier's
partition, as aws-iam-authenticator requires (``pkg/regions``: the hostnames of
every STS endpoint the SDK's endpoint data lists for the partition, resolved
regionally, plus the server region's own): ``sts.<region>.<DNS suffix>`` for
each region of the partition, and the partition's other STS hostnames (in
``aws``, the global ``sts.amazonaws.com`` and the ``sts-fips.`` hosts).  The
table is botocore's own ``partitions.json`` and ``endpoints.json``, so a token
signed for the host of another partition (``.amazonaws.com`` in ``aws-cn``,
``.amazonaws.com.cn`` in ``aws``) is refused as EKS there refuses it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import parse_qsl, urlsplit

from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.loaders import create_loader
from botocore.utils import percent_encode_sequence

__all__ = ["EksTokenVerifier", "TokenError", "TOKEN_PREFIX", "sts_hosts"]

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
#: aws-iam-authenticator ``maxTokenLenBytes``.
MAX_TOKEN_LEN = 4096
#: Presigned STS URLs are valid for 15 minutes after X-Amz-Date, whatever X-Amz-Expires says.
PRESIGNED_URL_LIFETIME = timedelta(minutes=15)
#: SigV4 rejects requests dated this far in the future ("Signature not yet current").
MAX_CLOCK_SKEW = timedelta(minutes=15)
#: aws-iam-authenticator ``parameterWhitelist`` (compared lower-cased).
ALLOWED_PARAMETERS = frozenset(
    {
        "action",
        "version",
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-expires",
        "x-amz-security-token",
        "x-amz-signature",
        "x-amz-signedheaders",
    }
)
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_BAD_PERCENT_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


class TokenError(Exception):
    """The bearer token is not a valid EKS token for any emulated cluster."""


@functools.lru_cache(maxsize=None)
def _botocore_data(name: str) -> list[dict[str, Any]]:
    """botocore's ``partitions`` or ``endpoints`` table (large: read once)."""
    return create_loader().load_data(name)["partitions"]


def sts_hosts(partition: str) -> dict[str, str]:
    """The STS hostnames of ``partition``, each with the region a request to it is signed for.

    Raises ``ValueError`` for a partition botocore does not know (aws-iam-authenticator:
    "partition ... not found").
    """
    regions = next((p for p in _botocore_data("partitions") if p["id"] == partition), None)
    endpoints = next((p for p in _botocore_data("endpoints") if p["partition"] == partition), None)
    if regions is None or endpoints is None:
        raise ValueError(f"partition {partition!r} not found")
    suffix = regions["outputs"]["dnsSuffix"]
    hosts = {f"sts.{region}.{suffix}": region for region in regions["regions"] if not region.endswith("-global")}
    for name, endpoint in endpoints["services"].get("sts", {}).get("endpoints", {}).items():
        scope = endpoint.get("credentialScope", {}).get("region", name)
        hosts[endpoint.get("hostname", f"sts.{name}.{suffix}")] = scope
    return hosts


class EksTokenVerifier:
    """Callable ``token -> access key id`` for :class:`token_review.TokenReviewer`.

    ``credentials`` maps access key ids to secret keys (it is read at every
    call, so a shared dict may be updated later).  ``cluster_names`` returns the
    cluster names currently emulated; the token must be signed for one of them.
    ``now`` returns the current time as an aware UTC datetime (tests pin it).
    ``partition`` is the AWS partition the clusters are in: the token's STS host
    must be one of its endpoints (``sts_hosts``).  ``session_token_of`` gives
    the session token issued with a role session's access key (None for a
    long-term key): the token must carry exactly that one.

    The username is the access key id: without STS there is no caller ARN.
    """

    def __init__(
        self,
        credentials: Mapping[str, str],
        cluster_names: Callable[[], Iterable[str]],
        now: Callable[[], datetime] | None = None,
        partition: str = "aws",
        session_token_of: Callable[[str], str | None] | None = None,
    ) -> None:
        self._credentials = credentials
        # The session token STS issued with an access key of a role session: STS refuses the
        # presigned call without it or with another (InvalidClientTokenId).
        self._session_token_of = session_token_of or (lambda access_key: None)
        self._cluster_names = cluster_names
        self._now = now or (lambda: datetime.now(timezone.utc))
        self._hosts = sts_hosts(partition)

    def __call__(self, token: str) -> str:
        url = _decode(token)
        parts = urlsplit(url)
        if parts.scheme != "https":
            raise TokenError(f"unexpected scheme {parts.scheme!r} in pre-signed URL")
        host_region = self._hosts.get(parts.netloc)
        if host_region is None:
            raise TokenError(f"unexpected hostname {parts.netloc!r} in pre-signed URL")
        if parts.path != "/":
            raise TokenError("unexpected path in pre-signed URL")
        params = _parse_query(parts.query)
        lower = {k.lower(): v for k, v in params.items()}

        if lower.get("action") != "GetCallerIdentity":
            raise TokenError("unexpected action parameter in pre-signed URL")
        signed_headers = lower.get("x-amz-signedheaders", "").lower().split(";")
        if CLUSTER_ID_HEADER not in signed_headers:
            raise TokenError(f"client did not sign the {CLUSTER_ID_HEADER} header in the pre-signed URL")
        expires = lower.get("x-amz-expires", "")
        if not expires.isdigit() or int(expires) > 900:
            raise TokenError(f"invalid X-Amz-Expires parameter in pre-signed URL: {expires!r}")
        amz_date = lower.get("x-amz-date", "")
        if not amz_date:
            raise TokenError("X-Amz-Date parameter must be present in pre-signed URL")
        if not _AMZ_DATE.fullmatch(amz_date):
            raise TokenError(f"error parsing X-Amz-Date parameter {amz_date!r}")
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        now = self._now()
        if now > signed_at + PRESIGNED_URL_LIFETIME:
            raise TokenError(f"X-Amz-Date parameter is expired (15 minute expiration) {signed_at.isoformat()}")
        if signed_at - now > MAX_CLOCK_SKEW:
            raise TokenError(f"X-Amz-Date parameter {signed_at.isoformat()} is in the future")

        access_key, region = _credential_scope(lower.get("x-amz-credential", ""), host_region)
        secret = self._credentials.get(access_key)
        if secret is None:
            raise TokenError(f"unknown access key id {access_key!r}")
        issued = self._session_token_of(access_key)
        if issued is not None and not hmac.compare_digest(
            lower.get("x-amz-security-token", "").encode(), issued.encode()
        ):
            raise TokenError("the security token included in the request is invalid")
        signature = lower.get("x-amz-signature", "")
        unsigned = {k: v for k, v in params.items() if k.lower() != "x-amz-signature"}
        for cluster in sorted(set(self._cluster_names())):
            expected = _signature(parts.netloc, unsigned, amz_date, cluster, Credentials(access_key, secret), region)
            if hmac.compare_digest(expected.encode(), signature.encode()):
                return access_key
        raise TokenError("signature does not match any emulated cluster")


def _decode(token: str) -> str:
    if len(token) > MAX_TOKEN_LEN:
        raise TokenError("token is too large")
    if not token.startswith(TOKEN_PREFIX):
        raise TokenError(f"token is missing expected {TOKEN_PREFIX!r} prefix")
    payload = token[len(TOKEN_PREFIX):]
    if not _BASE64URL.fullmatch(payload):
        raise TokenError("token is not base64url encoded")
    payload = payload.rstrip("=")
    try:
        return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise TokenError(f"token is not base64url encoded: {exc}") from exc


def _parse_query(query: str) -> dict[str, str]:
    """Go ``url.ParseQuery`` plus the authenticator's whitelist and single-value rules."""
    if ";" in query or _BAD_PERCENT_ESCAPE.search(query):
        raise TokenError("malformed query parameter")
    params: dict[str, str] = {}
    seen: set[str] = set()
    for key, value in parse_qsl(query, keep_blank_values=True):
        lowered = key.lower()
        if lowered not in ALLOWED_PARAMETERS:
            raise TokenError(f"non-whitelisted query parameter {key!r}")
        if lowered in seen:
            raise TokenError("query parameter with multiple values not supported")
        seen.add(lowered)
        params[key] = value
    return params


def _credential_scope(credential: str, host_region: str) -> tuple[str, str]:
    """Split ``AKID/yyyymmdd/region/sts/aws4_request``; the region must be the endpoint's."""
    scope = credential.split("/")
    if len(scope) != 5 or scope[3] != "sts" or scope[4] != "aws4_request" or not scope[0]:
        raise TokenError(f"malformed X-Amz-Credential parameter {credential!r}")
    if scope[2] != host_region:
        raise TokenError(f"credential scope region {scope[2]!r} does not match the STS endpoint {host_region!r}")
    return scope[0], scope[2]


def _signature(
    host: str, params: Mapping[str, str], amz_date: str, cluster: str, credentials: Credentials, region: str
) -> str:
    """The SigV4 query signature a client holding ``credentials`` computes for ``cluster``.

    The request is rebuilt from the token's own query (every parameter but the
    signature, re-encoded as the signer encodes them) plus the ``x-k8s-aws-id``
    header; botocore adds ``host``.  Any difference - another cluster, another
    signed-header list, another date, region or key - changes the signature.
    """
    request = AWSRequest(
        method="GET",
        url=f"https://{host}/?{percent_encode_sequence(dict(params))}",
        headers={CLUSTER_ID_HEADER: cluster},
    )
    request.context["timestamp"] = amz_date
    signer = SigV4QueryAuth(credentials, "sts", region)
    canonical = signer.canonical_request(request)
    return signer.signature(signer.string_to_sign(request, canonical), request)
