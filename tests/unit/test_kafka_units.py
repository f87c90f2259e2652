"""Kafka transport pieces that need no broker: the offset tracker, settings validation,
the aiokafka keywords (TLS, SASL, MSK IAM) and the error translation boundary."""

from __future__ import annotations

import base64
import datetime
import socket
import ssl
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from aiokafka import errors as kerr
from aiokafka.abc import AbstractTokenProvider

from asyncmq_cloud.errors import (
    AccessDeniedError,
    ConfigurationError,
    InvalidNameError,
    PermanentError,
    ResourceMissingError,
    TransientError,
)
from asyncmq_cloud.transports._kafka_config import (
    MAX_TOPIC_NAME_LENGTH,
    KafkaTransportConfig,
    client_kwargs,
    consumer_kwargs,
)
from asyncmq_cloud.transports._kafka_consumer import PartitionTracker
from asyncmq_cloud.transports._kafka_errors import kafka_errors, translate_kafka_error

SASL = {"security_protocol": "SASL_PLAINTEXT", "sasl_username": "u", "sasl_password": "p"}


# -- PartitionTracker ---------------------------------------------------------------------------
def test_tracker_commits_only_the_contiguous_prefix_of_out_of_order_finishes() -> None:
    tracker = PartitionTracker(epoch=1)
    assert all(tracker.fetched(offset) for offset in range(10, 15))
    assert tracker.in_flight == 5
    assert tracker.to_commit() is None  # nothing finished yet

    tracker.finish(12)
    tracker.finish(14)
    assert tracker.to_commit() is None  # 10 is not done: committing anything would skip it
    tracker.finish(10)
    assert tracker.to_commit() == 11  # the next unfinished record is 11
    tracker.committed(11)
    assert tracker.to_commit() is None  # already committed: no repeated commit

    tracker.finish(11)
    assert tracker.to_commit() == 13  # 11 and 12 done, 13 open
    tracker.finish(13)
    assert tracker.to_commit() == 15  # everything done: past the last record
    assert tracker.in_flight == 0


def test_tracker_in_flight_is_the_uncommitted_window() -> None:
    """``in_flight`` counts every record from the oldest unfinished one on, finished or not: one slow
    job at the head holds the window (and so the per-partition pause) open."""
    tracker = PartitionTracker(epoch=1)
    for offset in range(5):
        tracker.fetched(offset)
    for offset in (1, 2, 3, 4):
        tracker.finish(offset)
    assert tracker.in_flight == 5
    assert tracker.to_commit() is None
    tracker.finish(0)
    assert tracker.in_flight == 0
    assert tracker.to_commit() == 5


def test_tracker_ignores_refetches_and_unknown_offsets() -> None:
    tracker = PartitionTracker(epoch=3)
    assert tracker.fetched(0) and tracker.fetched(1)
    assert not tracker.fetched(1)  # a re-fetch of a tracked offset (aiokafka after a seek)
    assert not tracker.fetched(0)
    assert tracker.in_flight == 2

    tracker.finish(0)
    tracker.finish(1)
    assert tracker.to_commit() == 2
    assert not tracker.fetched(1)  # below the committable offset: already done
    assert tracker.in_flight == 0

    tracker.finish(7)  # never fetched: no effect
    tracker.finish(1)  # finished twice: no effect
    assert tracker.to_commit() == 2
    assert tracker.fetched(2)
    assert tracker.in_flight == 1


def test_tracker_started_set_follows_finish() -> None:
    tracker = PartitionTracker(epoch=1)
    tracker.fetched(0)
    tracker.fetched(1)
    tracker.started.update({0, 1})
    tracker.finish(1)
    assert tracker.started == {0}
    assert tracker.epoch == 1


# -- settings validation --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "rule"),
    [
        ({"security_protocol": "SASL_PLAINTEXT"}, "needs a sasl_mechanism"),
        ({"security_protocol": "SASL_SSL"}, "needs a sasl_mechanism"),
        ({"sasl_mechanism": "PLAIN"}, "sasl_mechanism needs security_protocol SASL_PLAINTEXT or SASL_SSL"),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u"},
            "sasl_mechanism=PLAIN needs sasl_username and sasl_password",
        ),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_password": "p"},
            "sasl_mechanism=SCRAM-SHA-512 needs sasl_username and sasl_password",
        ),
        ({"msk_iam": True}, "msk_iam needs security_protocol='SASL_SSL'"),
        ({"msk_iam": True, "security_protocol": "SASL_PLAINTEXT"}, "msk_iam needs security_protocol='SASL_SSL'"),
        (
            {"msk_iam": True, "security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"},
            "msk_iam needs security_protocol='SASL_SSL' (and no other sasl_mechanism)",
        ),
        (
            {"msk_iam": True, "security_protocol": "SASL_SSL", "sasl_username": "u"},
            "do not set sasl_username/sasl_password",
        ),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"},
            "needs sasl_oauth_token_provider in both producer_options and consumer_options",
        ),
        ({"session_timeout_ms": 6000, "heartbeat_interval_ms": 6000}, "heartbeat_interval_ms must be lower"),
        ({"session_timeout_ms": 6000, "heartbeat_interval_ms": 9000}, "heartbeat_interval_ms must be lower"),
        ({"security_protocol": "SSL", "ssl_certfile": "/c.pem"}, "mutual TLS needs both ssl_certfile and ssl_keyfile"),
        ({"topic_prefix": "bad prefix/"}, "topic_prefix"),
        ({"group_prefix": "bad:group"}, "group_prefix"),
        ({"topic_prefix": "p" * 101}, "topic_prefix"),
        ({"partitions": 0}, "partitions"),
        ({"security_protocol": "TLS"}, "security_protocol"),
        ({"sasl_mechanism": "GSSAPI", "security_protocol": "SASL_SSL"}, "sasl_mechanism"),
        ({"commit_interval": 0}, "commit_interval"),
        ({"no_such_option": 1}, "no_such_option"),
        ({"request_timeout_ms": 5000, "fetch_max_wait_ms": 5000}, "fetch_max_wait_ms must be lower"),
    ],
)
def test_config_errors_name_the_rule(options: dict[str, Any], rule: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid KafkaTransportConfig") as info:
        KafkaTransportConfig.build(**options)
    assert rule in str(info.value)


def test_the_default_fetch_wait_stays_below_a_short_request_timeout() -> None:
    """A fetch the broker holds longer than ``request_timeout_ms`` fails; the default wait halves instead."""
    assert consumer_kwargs(KafkaTransportConfig.build(), {}, "q")["fetch_max_wait_ms"] == 5000
    short = KafkaTransportConfig.build(request_timeout_ms=5000)
    assert consumer_kwargs(short, {}, "q")["fetch_max_wait_ms"] == 2500
    chosen = KafkaTransportConfig.build(request_timeout_ms=5000, fetch_max_wait_ms=1000)
    assert consumer_kwargs(chosen, {}, "q")["fetch_max_wait_ms"] == 1000


def test_valid_security_settings_build() -> None:
    for mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        config = KafkaTransportConfig.build(**SASL, sasl_mechanism=mechanism)
        assert config.sasl_mechanism == mechanism
    assert KafkaTransportConfig.build(msk_iam=True, security_protocol="SASL_SSL").msk_iam
    assert KafkaTransportConfig.build(msk_iam=True, security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER")


def test_topic_group_and_dlq_names() -> None:
    config = KafkaTransportConfig.build(topic_prefix="app.", group_prefix="workers-")
    assert config.topic("emails") == "app.emails"
    assert config.dlq_topic("emails") == "app.emails-dlq"
    assert config.group("emails") == "workers-emails"
    assert KafkaTransportConfig.build(topic_prefix="x-").group("q") == "x-q"  # group_prefix defaults to it


def test_topic_names_break_named_rules() -> None:
    config = KafkaTransportConfig.build(topic_prefix="asyncmq-")
    longest = "q" * (MAX_TOPIC_NAME_LENGTH - len("asyncmq-"))
    assert config.topic(longest) == f"asyncmq-{longest}"
    with pytest.raises(InvalidNameError, match=r"is 250 characters; the limit is 249"):
        config.topic(longest + "q")
    with pytest.raises(InvalidNameError, match="the limit is 249"):
        config.dlq_topic(longest)  # the topic fits, its "-dlq" does not
    with pytest.raises(InvalidNameError, match=r"may only contain letters, digits, '\.', '_' and '-'"):
        config.topic("bad queue")
    with pytest.raises(InvalidNameError, match="may only contain"):
        KafkaTransportConfig.build(topic_prefix="").topic("..")


# -- client_kwargs: TLS, SASL, MSK IAM ------------------------------------------------------------
def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate and its key (PEM) for ``localhost``."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def test_plaintext_kwargs_have_no_tls_or_sasl() -> None:
    kwargs = client_kwargs(KafkaTransportConfig.build(bootstrap_servers="b1:9092,b2:9092", request_timeout_ms=5000))
    assert kwargs == {
        "bootstrap_servers": "b1:9092,b2:9092",
        "client_id": "asyncmq-cloud",
        "request_timeout_ms": 5000,
        "security_protocol": "PLAINTEXT",
    }


def test_ssl_kwargs_build_a_verifying_context_from_the_ca_file(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    kwargs = client_kwargs(KafkaTransportConfig.build(security_protocol="SSL", ssl_cafile=str(cert)))
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "localhost"),),)]
    assert "sasl_mechanism" not in kwargs

    mutual = client_kwargs(
        KafkaTransportConfig.build(
            security_protocol="SSL",
            ssl_cafile=str(cert),
            ssl_certfile=str(cert),
            ssl_keyfile=str(key),
            ssl_check_hostname=False,
        )
    )
    assert mutual["ssl_context"].check_hostname is False


def test_ssl_kwargs_with_a_missing_ca_file_fail() -> None:
    with pytest.raises((FileNotFoundError, ssl.SSLError)):
        client_kwargs(KafkaTransportConfig.build(security_protocol="SSL", ssl_cafile="/nonexistent/ca.pem"))


def test_sasl_ssl_kwargs_carry_tls_and_scram_credentials() -> None:
    kwargs = client_kwargs(
        KafkaTransportConfig.build(
            security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="u", sasl_password="secret"
        )
    )
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)  # system CAs when ssl_cafile is None
    assert kwargs["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("u", "secret")


def test_sasl_password_is_secret_in_the_config_repr() -> None:
    config = KafkaTransportConfig.build(**{**SASL, "sasl_password": "hunter2"}, sasl_mechanism="PLAIN")
    assert "hunter2" not in repr(config)
    assert "hunter2" not in str(config.model_dump())


def test_custom_oauthbearer_provider_reaches_every_client() -> None:
    class Provider(AbstractTokenProvider):  # type: ignore[misc]
        async def token(self) -> str:
            return "t"

    provider = Provider()
    options = {"sasl_oauth_token_provider": provider}
    kwargs = client_kwargs(
        KafkaTransportConfig.build(
            security_protocol="SASL_SSL",
            sasl_mechanism="OAUTHBEARER",
            producer_options=options,
            consumer_options=options,
        )
    )
    assert kwargs["sasl_mechanism"] == "OAUTHBEARER"
    assert kwargs["sasl_oauth_token_provider"] is provider


async def test_msk_iam_token_provider_signs_locally_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """With dummy credentials (session fixture) the signer presigns a URL offline; a connect attempt fails the test."""
    pytest.importorskip("aws_msk_iam_sasl_signer")
    kwargs = client_kwargs(
        KafkaTransportConfig.build(msk_iam=True, security_protocol="SASL_SSL", msk_region="eu-west-1")
    )
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "OAUTHBEARER"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert "sasl_plain_username" not in kwargs
    provider = kwargs["sasl_oauth_token_provider"]
    assert isinstance(provider, AbstractTokenProvider)

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the MSK signer opened a connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    token = await provider.token()
    assert isinstance(token, str) and token
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    parsed = urllib.parse.urlparse(url)
    query = urllib.parse.parse_qs(parsed.query)
    assert parsed.netloc == "kafka.eu-west-1.amazonaws.com"
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Credential"][0].startswith("testing/")  # the dummy AWS_ACCESS_KEY_ID
    assert "X-Amz-Signature" in query
    assert await provider.token() == token  # cached until 60 s before it expires


def test_msk_iam_needs_a_region(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("aws_msk_iam_sasl_signer")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(ConfigurationError, match="msk_region or AWS_REGION"):
        client_kwargs(KafkaTransportConfig.build(msk_iam=True, security_protocol="SASL_SSL"))


# -- error translation -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (kerr.KafkaConnectionError("Unable to bootstrap"), TransientError),
        (kerr.KafkaTimeoutError(), TransientError),
        (kerr.NoBrokersAvailable(), TransientError),
        (kerr.RequestTimedOutError(), TransientError),
        (kerr.NotLeaderForPartitionError(), TransientError),  # retriable
        (ConnectionResetError("reset"), TransientError),
        (TimeoutError(), TransientError),
        (kerr.TopicAuthorizationFailedError(), AccessDeniedError),
        (kerr.GroupAuthorizationFailedError(), AccessDeniedError),
        (kerr.SaslAuthenticationFailed("bad password"), AccessDeniedError),
        (kerr.UnknownTopicOrPartitionError(), ResourceMissingError),
        (kerr.InvalidReplicationFactorError(), ConfigurationError),
        (kerr.InvalidPartitionsError(), ConfigurationError),
        (kerr.InvalidTopicError(), ConfigurationError),
        (kerr.RecordTooLargeError(), PermanentError),
        (kerr.UnsupportedVersionError(), PermanentError),
    ],
)
def test_translate_kafka_error(error: BaseException, expected: type[Exception]) -> None:
    translated = translate_kafka_error(error, "Kafka topic 't-q'")
    assert type(translated) is expected
    assert str(translated).startswith(f"Kafka topic 't-q': {type(error).__name__}")
    assert translated.retriable is (expected is TransientError)


def test_translate_keeps_project_errors() -> None:
    error = ResourceMissingError("already ours")
    assert translate_kafka_error(error, "x") is error


def test_kafka_errors_block_chains_the_original() -> None:
    original = kerr.TopicAuthorizationFailedError()
    with pytest.raises(AccessDeniedError, match="check the SASL credentials") as info, kafka_errors("Kafka topic 'x'"):
        raise original
    assert info.value.__cause__ is original
    with pytest.raises(KeyError), kafka_errors("x"):  # not an aiokafka/connection error: untouched
        raise KeyError("k")


def test_the_default_heartbeat_stays_below_a_short_session() -> None:
    """Decision 72: heartbeats every 5 s by default, a third of a shorter ``session_timeout_ms``; a
    short session set before the default changed still validates. An explicit heartbeat is checked."""
    assert consumer_kwargs(KafkaTransportConfig.build(), {}, "q")["heartbeat_interval_ms"] == 5000
    short = KafkaTransportConfig.build(session_timeout_ms=4500)
    assert consumer_kwargs(short, {}, "q")["heartbeat_interval_ms"] == 1500
    with pytest.raises(ConfigurationError, match="heartbeat_interval_ms must be lower"):
        KafkaTransportConfig.build(session_timeout_ms=4500, heartbeat_interval_ms=5000)


def test_delay_scan_interval_none_is_the_default() -> None:
    from asyncmq_cloud.config import LifecycleConfig

    assert LifecycleConfig(delay_scan_interval=None).delay_scan_interval == LifecycleConfig().delay_scan_interval == 5.0
