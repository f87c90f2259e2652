"""No secret reaches the output of ``asyncmq-cloud provision``, ``health``, ``doctor``, ``worker`` (issue 17 item 5).

Each command runs as a subprocess (``PYTHONPATH`` = the settings module's directory + the worktree)
with a settings module written in ``tmp_path`` whose backend reads its secrets from the
environment, as an application's would; stdout and stderr together must not show the marker
(``tests/support/secrets.py``). The in-process surfaces are in ``tests/test_secrets.py``.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.plugins.backend_kafka import drop_topics
from tests.support.secrets import (
    AWS_KEYS,
    assert_hidden,
    command_env,
    free_port,
    redis_with_password,
    run_command,
    run_worker,
    secret,
    write_settings,
)

KAFKA_REDIS = (
    'KafkaBackend(bootstrap_servers=E["S_BOOTSTRAP"], topic_prefix=E["S_PREFIX"], store=E["S_STORE"], '
    'delay_store=E.get("S_DELAY"), request_timeout_ms=5000, partitions=1, '
    "**({} if not E.get('S_PASSWORD') else {'security_protocol': 'SASL_PLAINTEXT', 'sasl_mechanism': 'PLAIN', "
    "'sasl_username': E['S_USER'], 'sasl_password': E['S_PASSWORD']}))"
)
AWS = (
    'SQSBackend(queue_prefix=E["S_PREFIX"], store=E["S_STORE"], delay_store=E["S_DELAY"], '
    'endpoint_url=E["S_ENDPOINT"], max_attempts=0, '
    "client_kwargs={'aws_access_key_id': E['S_KEY_ID'], 'aws_secret_access_key': E['S_AWS_KEY'], "
    "'aws_session_token': E['S_AWS_TOKEN']} if E.get('S_AWS_KEY') else None)"
)


def run_all(tmp_path: Path, backend_code: str, extra: dict[str, str]) -> dict[str, str]:
    """Run provision, health, doctor (``-v``: SDK lines at DEBUG too) and worker (``--log-level DEBUG``)
    with a settings module on ``backend_code``; each output."""
    name = f"secret_settings_{uuid.uuid4().hex[:8]}"
    env = command_env(tmp_path, write_settings(tmp_path, name, backend_code), extra)
    outputs = {
        "provision": run_command(["-v", "provision", "--queue", "secrets"], env),
        "health": run_command(["-v", "health", "--queue", "secrets", "--timeout", "4"], env),
        "doctor": run_command(["-v", "doctor", "--queue", "secrets", "--timeout", "4"], env),
        "worker": run_worker(env, seconds=6),
    }
    for command, output in outputs.items():
        assert_hidden(output, f"the output of asyncmq-cloud {command}")
    return outputs


@pytest.mark.kafka
@pytest.mark.redis
def test_commands_on_kafka_sasl_and_redis_with_wrong_passwords(tmp_path: Path, kafka_env: dict[str, str]) -> None:
    sasl = kafka_env.get("KAFKA_SASL_BOOTSTRAP_SERVERS")
    if not sasl:
        pytest.skip("the Kafka test bed has no SASL listener")
    with redis_with_password(secret("real")) as port:
        out = run_all(
            tmp_path,
            KAFKA_REDIS,
            {
                "S_BOOTSTRAP": sasl,
                "S_PREFIX": f"secrets-{uuid.uuid4().hex[:8]}-",
                "S_STORE": f"redis://:{secret('redis-wrong')}@127.0.0.1:{port}/0",
                "S_DELAY": f"redis://app:{secret('delay')}@127.0.0.1:{free_port()}/0?password={secret('q')}",
                "S_USER": kafka_env.get("KAFKA_SASL_USERNAME", "asyncmq"),
                "S_PASSWORD": secret("sasl-wrong"),
            },
        )
    assert "[kafka-auth]" in out["doctor"] and "[redis-auth]" in out["doctor"], out["doctor"]
    assert "[redis-unreachable]" in out["doctor"] and "sasl_auth_bytes=***" in out["doctor"], out["doctor"]
    assert "unhealthy" in out["health"] and out["provision"].startswith("exit 1"), out
    assert "worker on queue 'secrets'" in out["worker"], out["worker"]


@pytest.mark.kafka
@pytest.mark.redis
async def test_commands_on_kafka_and_redis_with_the_right_password(tmp_path: Path, kafka_env: dict[str, str]) -> None:
    prefix = f"secrets-{uuid.uuid4().hex[:8]}-"
    try:
        with redis_with_password(secret("real")) as port:
            out = run_all(
                tmp_path,
                KAFKA_REDIS,
                {
                    "S_BOOTSTRAP": kafka_env["KAFKA_BOOTSTRAP_SERVERS"],
                    "S_PREFIX": prefix,
                    "S_STORE": f"redis://default:{secret('real')}@127.0.0.1:{port}/0",
                },
            )
    finally:
        await drop_topics(kafka_env["KAFKA_BOOTSTRAP_SERVERS"], prefix)
    assert "provisioned" in out["provision"] and out["health"].startswith("exit 0"), out
    assert "doctor: all checks passed" in out["doctor"], out["doctor"]
    assert "drained" in out["worker"], out["worker"]


@pytest.mark.moto
@pytest.mark.parametrize("where", ["client_kwargs on moto", "environment, endpoint down"])
def test_commands_with_aws_keys_in_code_or_in_the_environment(tmp_path: Path, moto_endpoint: str, where: str) -> None:
    run = uuid.uuid4().hex[:8]
    pinned = where.startswith("client_kwargs")
    keys = {"S_KEY_ID": AWS_KEYS["aws_access_key_id"], "S_AWS_KEY": secret("key"), "S_AWS_TOKEN": secret("tok")}
    out = run_all(
        tmp_path,
        AWS,
        {
            "S_PREFIX": f"secrets-{run}-",
            "S_STORE": f"dynamodb://secrets-{run}",
            "S_DELAY": f"dynamodb://secrets-delays-{run}",
            "S_ENDPOINT": moto_endpoint if pinned else f"http://127.0.0.1:{free_port()}",
            **(keys if pinned else {}),
        },
    )
    if pinned:
        assert "provisioned" in out["provision"] and out["health"].startswith("exit 0"), out
        assert "AWS credentials pinned in client_kwargs" in out["doctor"], out["doctor"]
    else:
        assert "[endpoint-unreachable]" in out["doctor"] and "unhealthy" in out["health"], out


@pytest.mark.parametrize(
    ("backend_code", "variables"),
    [
        ('SQSBackend(store=E["S_STORE"])', {"S_STORE": f"redis://:{secret('slash')}/x@h:6379/0"}),
        ('SQSBackend(store=E["S_STORE"])', {"S_STORE": f"redis//app:{secret('typo')}@h:6379/0"}),
        ('KafkaBackend(bootstrap_servers=E["S_BOOTSTRAP"], store="memory://")', {"S_BOOTSTRAP": f"u:{secret('b')}@h"}),
        (
            'KafkaBackend(store="memory://", sasl_mechanism="NOPE", sasl_password=E["S_PASSWORD"])',
            {"S_PASSWORD": secret("sasl")},
        ),
    ],
    ids=["slash-in-password", "scheme-typo", "bootstrap-credentials", "bad-sasl"],
)
def test_commands_on_a_refused_configuration(tmp_path: Path, backend_code: str, variables: dict[str, str]) -> None:
    out = run_all(tmp_path, backend_code, variables)
    assert "FAIL [config-settings]" in out["doctor"], out["doctor"]
    assert all(out[name].startswith("exit 1") for name in ("provision", "health", "worker")), out
