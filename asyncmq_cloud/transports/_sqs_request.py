"""The ``SendMessage`` request a direct send repeats (``_sqs_direct``), and its SigV4 signature.

:func:`template_of` keeps what botocore's first ``SendMessage`` of a client carried: its URL,
protocol headers and the signing region and service; :func:`sigv4_headers` signs a new body
as ``botocore.auth.SigV4Auth`` signs such a request (a ``POST`` to the endpoint's root with
no query), written out: the canonical request, the string to sign and one HMAC with the
derived key, which is kept per day, region and service (decision 80).
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

OPERATION = "SendMessage"
#: Headers of the SDK's request a direct send repeats (lower case).
KEPT_HEADERS = ("content-type", "x-amz-target", "x-amzn-query-mode", "user-agent")
#: Headers botocore's SigV4 leaves unsigned (``botocore.auth.SIGNED_HEADERS_BLACKLIST``).
UNSIGNED_HEADERS = frozenset(("expect", "transfer-encoding", "user-agent", "x-amzn-trace-id"))
ALGORITHM = "AWS4-HMAC-SHA256"
_SCOPE = re.compile(r"^AWS4-HMAC-SHA256 Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request,\s*SignedHeaders=([^,]+),")


@dataclass(frozen=True)
class Template:
    """What a direct ``SendMessage`` repeats from the SDK's first one."""

    url: str
    headers: dict[str, str]
    region: str
    service: str
    host: str  # the signed ``host``, as botocore derives it from the URL
    signable: tuple[tuple[str, str], ...]  # the repeated headers that are signed: (name, canonical value)


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def template_of(request: Any) -> Template | str:
    """The template of the SDK's ``SendMessage`` ``request`` (a prepared request); or why none."""
    headers = {str(k).lower(): _text(v) for k, v in request.headers.items()}
    if headers.get("x-amz-target") != f"AmazonSQS.{OPERATION}":
        return "the client does not speak SQS's JSON protocol"
    if str(request.method).upper() != "POST":
        return f"the SDK sent {OPERATION} with {request.method}"
    scope = _SCOPE.match(headers.get("authorization", ""))
    if scope is None:
        return "the SDK's request is not signed with AWS4-HMAC-SHA256"
    url = urlsplit(str(request.url))
    if url.path not in ("", "/") or url.query or url.scheme not in ("http", "https") or not url.hostname:
        return "the endpoint URL has a path or a query"
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    if url.port is not None and url.port != {"http": 80, "https": 443}[url.scheme]:
        host = f"{host}:{url.port}"
    kept = {name: headers[name] for name in KEPT_HEADERS if name in headers}
    signable = tuple((name, " ".join(value.split())) for name, value in kept.items() if name not in UNSIGNED_HEADERS)
    ours = {name for name, _ in signable} | {"host", "x-amz-date"}
    if "x-amz-security-token" in headers:
        ours.add("x-amz-security-token")
    if ";".join(sorted(ours)) != scope.group(3):  # botocore signed a header this module would not repeat
        return f"botocore signed headers this module does not repeat ({scope.group(3)})"
    return Template(str(request.url), kept, scope.group(1), scope.group(2), host, signable)


def utcnow() -> datetime.datetime:
    """The signing clock (a function of its own: the tests stop it where they stop botocore's)."""
    return datetime.datetime.now(datetime.UTC)


@functools.lru_cache(maxsize=16)
def signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    """SigV4's derived key of one day, region and service (botocore derives it per request)."""
    key = ("AWS4" + secret).encode("utf-8")
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def sigv4_headers(
    template: Template, body: bytes, credentials: Any, now: datetime.datetime | None = None
) -> dict[str, str]:
    """The template's headers with SigV4's (``X-Amz-Date``, the token, ``Authorization``) for ``body``.

    botocore's ``SigV4Auth`` for a ``POST`` to the endpoint's root with no query, written out:
    the canonical request, the string to sign and the signature, the derived key kept per day."""
    moment = now or utcnow()
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.UTC)
    stamp = moment.strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    headers = dict(template.headers)
    headers["X-Amz-Date"] = stamp
    canonical = [*template.signable, ("host", template.host), ("x-amz-date", stamp)]
    token = credentials.token
    if token:
        headers["X-Amz-Security-Token"] = token
        canonical.append(("x-amz-security-token", " ".join(token.split())))
    canonical.sort()
    names = ";".join(name for name, _ in canonical)
    lines = "".join(f"{name}:{value}\n" for name, value in canonical)
    request = f"POST\n/\n\n{lines}\n{names}\n{hashlib.sha256(body).hexdigest()}"
    scope = f"{day}/{template.region}/{template.service}/aws4_request"
    to_sign = f"{ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(request.encode('utf-8')).hexdigest()}"
    key = signing_key(credentials.secret_key, day, template.region, template.service)
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, SignedHeaders={names}, Signature={signature}"
    )
    return headers
