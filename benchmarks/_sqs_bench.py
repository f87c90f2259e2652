"""What the SQS producer benchmarks share: their service flags, the services they start, and
an observer counting this process's SQS requests by operation."""

from __future__ import annotations

import argparse
import logging
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from asyncmq_cloud import observe


class SqsCalls(observe.BaseObserver):
    """SQS requests of this process by operation (the observe hook: botocore's calls and direct ones)."""

    def __init__(self) -> None:
        self.by_operation: Counter[str] = Counter()

    def backend_call(self, service: str, operation: str, outcome: str, seconds: float) -> None:
        if service == "sqs":
            self.by_operation[operation] += 1


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    """``--emulator``, ``--sqs-endpoint`` and ``--redis-url``."""
    parser.add_argument("--emulator", choices=("localstack", "elasticmq"), default="localstack")
    parser.add_argument("--sqs-endpoint", help="an SQS endpoint to use (default: start --emulator)")
    parser.add_argument("--redis-url", help="a Redis to use (default: start one)")


@contextmanager
def sqs_and_redis(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    """``(SQS endpoint, Redis URL)``: the given ones, else services started (and stopped afterwards)
    through ``scripts/services.py``; the SQS endpoint is also every SDK client's (``AWS_ENDPOINT_URL_SQS``)."""
    logging.getLogger("redis").setLevel(logging.WARNING)
    logging.getLogger("aiobotocore").setLevel(logging.WARNING)
    import services  # scripts/services.py (the caller puts scripts/ on sys.path)

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    started: list[Any] = []
    try:
        sqs, redis_url = args.sqs_endpoint, args.redis_url
        if not sqs:
            started.append(services.start(args.emulator))
            sqs = started[-1].url
        if not redis_url:
            started.append(services.start("redis"))
            redis_url = started[-1].url
        os.environ["AWS_ENDPOINT_URL_SQS"] = str(sqs)
        yield str(sqs), str(redis_url)
    finally:
        for service in started:
            service.stop()
