"""Bad settings raise the documented ConfigurationError, and never echo a secret."""

from __future__ import annotations

import traceback

import pytest

from asyncmq_cloud.backends.kafka import KafkaBackend
from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.errors import ConfigurationError
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
