"""Secrets never leave in text: URLs are masked before they reach an error, a log line or a report."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: Query parameters whose value is a secret (compared lower-case).
SECRET_PARAMETERS = frozenset({"password", "passwd", "pass", "secret", "token", "auth", "key", "sasl_password"})
#: Words that make a setting's (or keyword's) name a secret one (``aws_secret_access_key``, ``ssl_password``).
SECRET_NAME_PARTS = ("password", "passwd", "secret", "token", "credential")
MASK = "***"


def _mask_userinfo(url: str) -> str:
    """``url`` with everything before its last ``@`` (after ``scheme://``) masked, parsed or not.

    An unencoded ``/``, ``?`` or ``#`` in a password makes ``urlsplit`` put part of it in the
    path; masking the text itself hides it whatever the parser makes of it.
    """
    if "@" not in url:
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        return f"{MASK}@{url.rpartition('@')[2]}"
    userinfo, _, host = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    if colon and not any(c in user for c in "/?#"):
        return f"{scheme}://{user}:{MASK}@{host}"
    return f"{scheme}://{MASK}@{host}"  # a lone user part may be a token


def mask_url(url: object) -> str:
    """``url`` as text with its password (or whole user part) and secret query values replaced by ``***``.

    ``redis://app:pw@h:6379/0?password=pw`` -> ``redis://app:***@h:6379/0?password=***``. A value
    that does not parse as a URL is not echoed at all.

    Args:
        url: the URL (anything else is described by its type only).
    """
    if not isinstance(url, str):
        return f"<{type(url).__name__}>"
    masked = _mask_userinfo(url)
    try:
        parts = urlsplit(masked)
    except ValueError:
        return "<unparseable URL>"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if is_secret_name(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def is_secret_name(name: str) -> bool:
    """Whether a setting or keyword called ``name`` holds a secret (``sasl_password``, ``aws_session_token``).

    Args:
        name: the setting's or keyword's name.
    """
    lowered = name.lower()
    return any(part in lowered for part in SECRET_NAME_PARTS) or lowered in SECRET_PARAMETERS


def mask_value(name: str, value: Any) -> Any:
    """``value`` safe to show: masked under a secret ``name``, URLs masked, mappings masked key by key.

    Args:
        name: the setting's or keyword's name.
        value: its value.
    """
    if value is None:
        return None
    if is_secret_name(name):
        return MASK
    if isinstance(value, str):
        return mask_url(value) if ("://" in value or "@" in value) else value
    if isinstance(value, Mapping):
        return {key: mask_value(str(key), item) for key, item in value.items()}
    return value


def masked_repr(instance: Any) -> str:
    """The dataclass ``repr`` of ``instance`` with every field passed through :func:`mask_value`.

    Args:
        instance: a dataclass instance (settings that may hold URLs with passwords or keys).
    """
    assert is_dataclass(instance)
    values = vars(instance)
    shown = ", ".join(f"{f.name}={mask_value(f.name, values[f.name])!r}" for f in fields(instance) if f.repr)
    return f"{type(instance).__name__}({shown})"


class MaskingFilter(logging.Filter):
    """A logger filter that masks what ``pattern`` matches in a record's message (its group 1 is kept).

    Args:
        pattern: a regular expression whose group 1 is the text before the secret, which follows it.
    """

    def __init__(self, pattern: re.Pattern[str]) -> None:
        super().__init__()
        self.pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = self.pattern.sub(lambda match: match.group(1) + MASK, text)
        if masked != text:
            record.msg, record.args = masked, ()
        return True


def mask_in_logger(name: str, pattern: re.Pattern[str]) -> None:
    """Mask ``pattern`` in every record of logger ``name`` (idempotent), e.g. an SDK's DEBUG dump.

    Args:
        name: the logger that makes the records (a logger's filters do not apply to its children).
        pattern: see :class:`MaskingFilter`.
    """
    target = logging.getLogger(name)
    if not any(isinstance(f, MaskingFilter) and f.pattern == pattern for f in target.filters):
        target.addFilter(MaskingFilter(pattern))
