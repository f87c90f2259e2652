"""Payload encoding: AsyncMQ's configured JSON, compact UTF-8 by default, typed errors."""

from __future__ import annotations

import json
import uuid
from functools import partial

import pytest
from asyncmq import monkay

from asyncmq_cloud.core.validation import decode_payload, encode_payload
from asyncmq_cloud.errors import UnencodableError


def test_the_default_settings_give_compact_utf8() -> None:
    # AsyncMQ's settings hold json.dumps as a bound method: still the default, still compact.
    assert getattr(monkay.settings.json_dumps, "__func__", None) is json.dumps
    assert encode_payload({"name": "café", "args": [1, 2]}) == '{"name":"café","args":[1,2]}'
    assert decode_payload('{"name":"café"}') == {"name": "café"}


def test_a_value_no_encoder_takes_is_a_type_error_naming_it() -> None:
    with pytest.raises(UnencodableError, match="not JSON serializable") as caught:
        encode_payload({"handle": object()})
    assert isinstance(caught.value, TypeError)


def test_the_configured_encoder_and_decoder_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    def encoder(value: object) -> str:
        if isinstance(value, uuid.UUID):
            return f"uuid:{value}"
        raise TypeError(f"{type(value).__name__} is not JSON serializable")

    def decoder(data: dict[str, object]) -> dict[str, object]:
        return {k: uuid.UUID(v[5:]) if isinstance(v, str) and v.startswith("uuid:") else v for k, v in data.items()}

    monkeypatch.setattr(monkay.settings, "json_dumps", partial(json.dumps, default=encoder))
    monkeypatch.setattr(monkay.settings, "json_loads", partial(json.loads, object_hook=decoder))
    value = uuid.uuid4()
    text = encode_payload({"user": value})
    assert f"uuid:{value}" in text
    assert decode_payload(text) == {"user": value}
    with pytest.raises(UnencodableError):
        encode_payload({"handle": object()})
