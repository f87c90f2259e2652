"""The Redis check of ``asyncmq-cloud doctor``: a Redis store's URL answers ``PING``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from asyncmq_cloud.commands.doctor._report import Checks, error_text, masked


async def check_redis(checks: Checks, role: str, raw: str, client_kwargs: Mapping[str, Any]) -> None:
    """``PING`` the Redis at ``raw`` once (no retry), with the store's own client options.

    Args:
        checks: the run's report and timeout.
        role: which store uses it (``store``/``delay store``), for the report.
        raw: the store's Redis URL (its password is masked in the report).
        client_kwargs: the store's ``redis.asyncio.from_url`` options.
    """
    import redis.asyncio as aioredis
    from redis import exceptions as rexc
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    url, extra = masked(raw), {**client_kwargs, "retry": Retry(NoBackoff(), 0)}
    client = aioredis.from_url(raw, socket_connect_timeout=checks.timeout, socket_timeout=checks.timeout, **extra)
    try:
        await checks.bounded(client.ping())
        checks.say("ok", "redis", f"Redis {role} {url} answers PING")
    except (rexc.AuthenticationError, rexc.AuthorizationError, rexc.ResponseError) as exc:
        checks.say("FAIL", "redis-auth", f"Redis {role} {url} refused: {exc}", "fix user:password in the URL")
    except Exception as exc:
        detail = error_text(exc)
        fix = "start Redis there, or correct store=/delay_store= (redis://HOST:PORT/DB) in the backend settings"
        checks.say("FAIL", "redis-unreachable", f"Redis {role} {url} is unreachable: {detail}", fix)
    finally:
        await client.aclose()
