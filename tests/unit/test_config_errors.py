"""Bad settings raise the documented ConfigurationError, and never echo a secret."""

from __future__ import annotations

import traceback

import pytest

from asyncmq_cloud.backends.kafka import KafkaBackend
from asyncmq_cloud.backends.sqs import SQSBackend
from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.errors import ConfigurationError
from asyncmq_cloud.redact import mask_url
from asyncmq_cloud.transports._kafka_config import KafkaTransportConfig

SECRET = "".join(["marker", "-s3cret-", "password"])  # built, so no source line shows it whole


def _everything_shown(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


def test_lifecycle_config_out_of_range_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="receive_wait: Input should be greater than or equal to 0"):
        LifecycleConfig(receive_wait=-1)
    with pytest.raises(ConfigurationError, match="invalid LifecycleConfig: no_such_knob"):
        LifecycleConfig(no_such_knob=1)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "settings",
    [
        {"security_protocol": "SASL_SSL", "sasl_password": SECRET},  # a model-level rule: <root>
        {"sasl_mechanism": "NOPE", "sasl_username": "u", "sasl_password": SECRET},  # a field rule
        {"security_protocol": "NOPE", "sasl_password": SECRET},
    ],
)
def test_a_bad_kafka_security_setting_never_shows_the_password(settings: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError) as direct:
        KafkaTransportConfig(**settings)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError) as through_backend:
        KafkaBackend(bootstrap_servers="127.0.0.1:9", store="memory://", **settings)  # type: ignore[arg-type]
    for caught in (direct, through_backend):
        assert "invalid KafkaTransportConfig" in str(caught.value)
        assert SECRET not in _everything_shown(caught.value), "the password reached the error, its repr or its chain"


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        (f"redis://:{SECRET}@h:6379/0?prefix=", "give ?prefix= once, non-empty"),
        (f"redis://app:{SECRET}@h:notaport/0", "the port must be a number"),
        (f"redis://app:{SECRET}@h:6379/zero", "the database must be a number"),
        (f"rediss://h:6379/0?password={SECRET}&prefix=", "give ?prefix= once"),
        (f"ftp://app:{SECRET}@h/x", "unsupported scheme 'ftp'"),
        (f"dynamodb://user:{SECRET}@tbl", "write a DynamoDB table as dynamodb://TABLE"),
        (f"redis://{SECRET}@h:6379/0?prefix=", "give ?prefix= once"),
    ],
)
def test_a_bad_store_url_names_the_rule_and_never_the_password(url: str, rule: str) -> None:
    for setting in ("store", "delay_store"):
        with pytest.raises(ConfigurationError) as caught:
            SQSBackend(**{"store": "memory://", setting: url})  # type: ignore[arg-type]
        assert rule in str(caught.value) and f"{setting}=" in str(caught.value)
        assert SECRET not in _everything_shown(caught.value)


def test_a_missing_store_is_named_as_such() -> None:
    with pytest.raises(ConfigurationError, match="store is required"):
        SQSBackend(store=None)  # type: ignore[arg-type]


def test_mask_url_hides_passwords_tokens_and_secret_parameters() -> None:
    assert mask_url("redis://app:pw@h:6379/0?password=pw&prefix=p") == "redis://app:***@h:6379/0?password=***&prefix=p"
    assert mask_url("redis://token@h/0") == "redis://***@h/0"
    assert mask_url("redis://h:6379/0?prefix=p") == "redis://h:6379/0?prefix=p"
    assert mask_url(None) == "<NoneType>" and mask_url("http://[::1") == "<unparseable URL>"


@pytest.mark.parametrize("servers", ["", "nohost:notaport", "h:0", "h:9092,,h2:9092", ":9092"])
def test_bad_bootstrap_servers_are_refused_at_construction(servers: str) -> None:
    with pytest.raises(ConfigurationError, match="bootstrap_servers"):
        KafkaBackend(bootstrap_servers=servers, store="memory://")


@pytest.mark.parametrize("servers", ["broker-1:9092,broker-2:9093", "broker-1", "[::1]:9092", "127.0.0.1:19092"])
def test_good_bootstrap_servers_are_kept(servers: str) -> None:
    assert KafkaTransportConfig(bootstrap_servers=servers).bootstrap_servers == servers


@pytest.mark.parametrize("url", ["not a url", "ftp://h:1", "http://", "http://h:notaport", "http://h:70000"])
def test_a_bad_endpoint_url_is_refused_at_construction(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"endpoint_url=.* is not an http"):
        SQSBackend(endpoint_url=url, store="memory://")
