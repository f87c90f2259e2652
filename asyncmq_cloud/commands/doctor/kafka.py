"""The Kafka checks of ``asyncmq-cloud doctor``: the bootstrap servers answer and accept the login,
and each ``--queue``'s topic and dead-letter topic exist."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from asyncmq_cloud.commands.doctor._report import Checks
from asyncmq_cloud.errors import AccessDeniedError

if TYPE_CHECKING:
    from asyncmq_cloud.transports.kafka import KafkaTransport


async def check_kafka(checks: Checks, transport: KafkaTransport) -> None:
    """Reach the cluster with the transport's own settings (one admin client), then list its topics.

    Args:
        checks: the run's report, timeout and clean-up stack.
        transport: the backend's Kafka transport.
    """
    servers, env = transport.config.bootstrap_servers, os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    source = "KAFKA_BOOTSTRAP_SERVERS" if env == servers else "bootstrap_servers= or the default localhost:9092"
    try:
        admin = await checks.bounded(transport.open_admin(request_timeout=checks.timeout))
    except AccessDeniedError as exc:
        fix = "check security_protocol, sasl_mechanism, sasl_username/sasl_password (or msk_iam) in the backend"
        checks.say("FAIL", "kafka-auth", str(exc), fix)
        return
    except Exception as exc:
        detail = "no answer within --timeout" if isinstance(exc, TimeoutError) else str(exc)
        fix = (
            "start the broker there (its advertised.listeners must be reachable from here), or correct "
            "bootstrap_servers= in the backend or KAFKA_BOOTSTRAP_SERVERS"
        )
        checks.say("FAIL", "kafka-unreachable", f"Kafka {servers} (from {source}) is unreachable: {detail}", fix)
        return
    checks.stack.push_async_callback(admin.close)
    checks.say("ok", "kafka", f"Kafka bootstrap servers {servers} answer (from {source})")
    if not checks.queues:
        checks.say("skip", "queues", "no --queue given: Kafka topics not checked (pass --queue Q for each)")
        return
    try:
        topics = set(await checks.bounded(admin.list_topics()))
    except Exception as exc:
        checks.say("FAIL", "kafka-topics", f"listing topics failed: {type(exc).__name__}: {exc}", "retry")
        return
    for queue in checks.queues:
        spec = transport.spec(queue)
        fix = f"asyncmq-cloud provision --queue {queue} (development) or your topic tooling (production)"
        for name, kind in ((spec.name, "topic"), (spec.dlq_name, "dead-letter topic")):
            what = f"Kafka {kind} {name!r} of AsyncMQ queue {queue!r}"
            if name in topics:
                checks.say("ok", "topic", f"{what} exists")
            else:
                checks.say("FAIL", "topic-missing", f"{what} does not exist", fix)
