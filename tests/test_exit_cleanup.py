"""A backend nobody closes leaves no noise at exit (issue 17, item 11).

AsyncMQ never calls ``close()`` and scripts forget it: the clients were then collected after
their loop closed, and aiohttp printed ``Unclosed client session`` / ``Unclosed connector``
(and Python unclosed-socket warnings) on every exit. The presets now close what a loop opened
when the loop ends (``PresetBackend._close_at_loop_end``) and start again on the next loop.
A real script in a subprocess, on the real services, run with ResourceWarnings shown.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.plugins.backend_kafka import drop_topics
from tests.plugins.backend_sqs import drop_queues
from tests.plugins.store_dynamodb import drop_tables
from tests.plugins.store_redis import drop_prefix

ROOT = Path(__file__).resolve().parents[1]
NOISE = ("Unclosed", "unclosed", "ResourceWarning", "Traceback", "Task was destroyed")

KINDS = [
    pytest.param("sqs", marks=[pytest.mark.elasticmq, pytest.mark.redis]),
    pytest.param("dynamodb", marks=pytest.mark.moto),
    pytest.param("kafka", marks=[pytest.mark.kafka, pytest.mark.redis]),
]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_backend_never_closed_leaves_nothing_on_stderr_at_exit(
    kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"nc{uuid.uuid4().hex[:8]}-"
    env = {"NC_PREFIX": prefix, "PYTHONPATH": str(ROOT)}
    redis_url = str(request.getfixturevalue("redis_url")) if kind != "dynamodb" else ""
    if redis_url:
        env["NC_STORE"] = f"{redis_url}?prefix={prefix}"
    if kind == "sqs":
        env["AWS_ENDPOINT_URL_SQS"] = str(request.getfixturevalue("elasticmq_endpoint"))
    elif kind == "dynamodb":
        env["AWS_ENDPOINT_URL_DYNAMODB"] = str(request.getfixturevalue("moto_endpoint"))
    else:
        env["KAFKA_BOOTSTRAP_SERVERS"] = str(request.getfixturevalue("kafka_bootstrap"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-W", "default::ResourceWarning", "-m", "tests.support.never_closed", kind],
            cwd=ROOT,
            capture_output=True,
            timeout=120,
            check=False,
        )
    finally:
        if redis_url:
            await drop_prefix(redis_url, prefix)
        if kind == "sqs":
            await drop_queues(env["AWS_ENDPOINT_URL_SQS"], prefix)
        elif kind == "dynamodb":
            await drop_tables(env["AWS_ENDPOINT_URL_DYNAMODB"], f"{prefix}jobs", f"{prefix}delays")
        else:
            await drop_topics(env["KAFKA_BOOTSTRAP_SERVERS"], prefix)
    out, err = done.stdout.decode(), done.stderr.decode(errors="replace")
    assert done.returncode == 0, err
    assert [line.split()[-1] for line in out.splitlines()] == ["waiting", "waiting"], out + err
    noise = [line for line in err.splitlines() if any(word in line for word in NOISE)]
    assert noise == [], err
