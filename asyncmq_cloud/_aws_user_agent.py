"""botocore's User-Agent header built once per feature set instead of on every request.

botocore rebuilds a client's ``User-Agent`` string right before each request is sent
(``UserAgentString.rebuild_and_replace_user_agent_handler``, registered last on
``request-created``) so that the feature ids used by that request (retry mode, batch
calls, ...) are listed in it. The string depends only on the client (fixed when it is
created) and on that feature set, and building it (sanitizing each component) was a
sixth of the CPU of an SQS ``SendMessage`` here (``benchmarks/peers.py``; it is built
twice per request: for the request and again before sending). :func:`cache_user_agent`
makes the client's builder remember the string per distinct feature set: the very same
header is sent. Where botocore's internals differ (another version), the client is left
as it is.
"""

from __future__ import annotations

from typing import Any

from botocore.context import get_context

#: Distinct feature sets remembered per client (a handful in practice); past it, built per request.
MAX_CACHED = 64


def cache_user_agent(client: Any) -> bool:
    """Build ``client``'s User-Agent once per feature set; False (client unchanged) where botocore differs."""
    creator: Any = getattr(client, "_user_agent_creator", None)
    build = getattr(creator, "to_string", None)
    if build is None or not hasattr(creator, "rebuild_and_replace_user_agent_handler"):
        return False
    client_features = frozenset(getattr(creator, "_client_features", None) or ())
    built: dict[frozenset[str], str] = {}

    def to_string() -> str:
        context = get_context()
        key = client_features | frozenset(context.features) if context is not None else client_features
        user_agent = built.get(key)
        if user_agent is None:
            user_agent = build()
            if len(built) < MAX_CACHED:
                built[key] = user_agent
        return user_agent

    creator.to_string = to_string  # this client's creator only: botocore calls it twice per request
    return True
