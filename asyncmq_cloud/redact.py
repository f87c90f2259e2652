"""Secrets never leave in text: URLs are masked before they reach an error, a log line or a report."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: Query parameters whose value is a secret (compared lower-case).
SECRET_PARAMETERS = frozenset({"password", "passwd", "pass", "secret", "token", "auth", "key", "sasl_password"})
MASK = "***"


def mask_url(url: object) -> str:
    """``url`` as text with its password (or whole user part) and secret query values replaced by ``***``.

    ``redis://app:pw@h:6379/0?password=pw`` -> ``redis://app:***@h:6379/0?password=***``. A value
    that does not parse as a URL is not echoed at all.

    Args:
        url: the URL (anything else is described by its type only).
    """
    if not isinstance(url, str):
        return f"<{type(url).__name__}>"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if colon else f"{MASK}@{host}"  # a lone user part may be a token
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if k.lower() in SECRET_PARAMETERS else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
