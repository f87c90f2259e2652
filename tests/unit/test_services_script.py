"""scripts/services.py logic that needs no service: the Kafka cluster id."""

from __future__ import annotations

import base64
from collections.abc import Iterator

from tests.plugins.services import services


def test_a_cluster_id_never_starts_with_a_dash() -> None:
    dash_first = b"\xf8" + bytes(15)  # base64url "-" is 62: these bytes encode to "-A..."
    assert base64.urlsafe_b64encode(dash_first).decode().startswith("-")
    draws: Iterator[bytes] = iter([dash_first, dash_first, bytes(range(16))])
    cluster_id = services.kafka_cluster_id(lambda: next(draws))
    assert cluster_id == base64.urlsafe_b64encode(bytes(range(16))).decode().rstrip("=")
    assert len(cluster_id) == 22 and not cluster_id.startswith("-")


def test_random_cluster_ids_are_valid() -> None:
    ids = {services.kafka_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000 and not any(i.startswith("-") for i in ids)
