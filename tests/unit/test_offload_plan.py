"""The claim check's rules, on the memory store with the S3 side kept in a dict (no service).

The S3 side itself is tested on moto and LocalStack (``tests/test_offload.py``).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from asyncmq.core.enums import State

from asyncmq_cloud.aws import AwsClients
from asyncmq_cloud.core.bodies import metadata_only
from asyncmq_cloud.core.records import BODIES_KEY, new_job_record
from asyncmq_cloud.errors import (
    AccessDeniedError,
    ConfigurationError,
    InvalidNameError,
    PayloadTooLargeError,
    PermanentError,
    TransientError,
)
from asyncmq_cloud.resources.iam import Scope, policies
from asyncmq_cloud.resources.s3 import S3BucketSpec, normalize_prefix
from asyncmq_cloud.stores._s3_bodies import S3Bodies
from asyncmq_cloud.stores.memory import MemoryStateStore
from asyncmq_cloud.stores.offload import MARKER, OffloadingStore, S3Offload, with_offload

Q = "q"


class DictBodies(S3Bodies):
    """The bodies in a dict: what was put, got and deleted; ``fault`` raised by the next get."""

    def __init__(self, spec: S3BucketSpec) -> None:
        super().__init__(spec, clients=AwsClients(endpoint_url="http://127.0.0.1:9", region_name="us-east-1"))
        self.objects: dict[str, bytes] = {}
        self.puts: list[str] = []
        self.gets: list[str] = []
        self.fault: Exception | None = None

    async def put(self, key: str, data: bytes, *, force: bool = False) -> None:
        if force or key not in self.objects:
            self.puts.append(key)
        self.objects[key] = data

    async def get(self, key: str) -> bytes | None:
        self.gets.append(key)
        if self.fault is not None:
            raise self.fault
        return self.objects.get(key)

    async def delete_job(self, queue: str, job_id: str, token: str | None = None) -> int:
        prefix = self.job_prefix(queue, job_id) + (f"{token}/" if token else "")
        gone = [key for key in self.objects if key.startswith(prefix)]
        for key in gone:
            del self.objects[key]
        return len(gone)


def _store(threshold: int = 1000, inner_limit: int = 50_000, max_bytes: int = 200_000) -> OffloadingStore:
    offload = S3Offload(bucket="my-bucket", prefix="p", threshold=threshold, max_payload_bytes=max_bytes)
    store = OffloadingStore(MemoryStateStore(max_payload_bytes=inner_limit), offload, clients=AwsClients())
    store.bodies = DictBodies(offload.spec())
    return store


def _bodies(store: OffloadingStore) -> DictBodies:
    assert isinstance(store.bodies, DictBodies)
    return store.bodies


def _job(job_id: str = "j1", **fields: Any) -> dict[str, Any]:
    return {"id": job_id, "task": "t", "args": [], "kwargs": {}, "result": None, **fields}


async def test_a_small_payload_is_written_as_is() -> None:
    store = _store()
    await store.create([new_job_record(Q, _job(kwargs={"a": 1}), [])])
    raw = await store.inner.get(Q, "j1")
    assert raw is not None and MARKER not in raw.payload and raw.payload["kwargs"] == {"a": 1}
    assert _bodies(store).puts == []


async def test_large_arguments_go_to_s3_under_a_content_addressed_key() -> None:
    store = _store()
    await store.create([new_job_record(Q, _job("a/b", kwargs={"x": "y" * 5000}), [])])
    raw = await store.inner.get(Q, "a/b")
    assert raw is not None and set(raw.payload[MARKER]) == {"args"}
    assert "args" not in raw.payload and "kwargs" not in raw.payload and raw.payload["task"] == "t"
    (key,) = _bodies(store).puts
    data = _bodies(store).objects[key]
    token = raw.payload[BODIES_KEY]
    assert key == f"p/{Q}/a%2Fb/{token}/args-{hashlib.sha256(data).hexdigest()}.json", "the job id percent-encoded"
    got = await store.get(Q, "a/b")
    assert got is not None and got.payload["kwargs"] == {"x": "y" * 5000} and MARKER not in got.payload


async def test_only_the_parts_needed_to_fit_go_largest_first() -> None:
    store = _store(threshold=2000)
    await store.create([new_job_record(Q, _job(kwargs={"x": "y" * 800}, result="r" * 3000), [])])
    raw = await store.inner.get(Q, "j1")
    assert raw is not None and set(raw.payload[MARKER]) == {"result"}, "the result alone was enough"
    assert raw.payload["kwargs"] == {"x": "y" * 800}
    await store.create([new_job_record(Q, _job("j2", kwargs={"x": "y" * 3000}, result="r" * 3000), [])])
    raw = await store.inner.get(Q, "j2")
    assert raw is not None and set(raw.payload[MARKER]) == {"args", "result"}


async def test_metadata_only_reads_fetch_nothing_and_writing_them_back_keeps_the_pointers() -> None:
    store = _store()
    await store.create([new_job_record(Q, _job(kwargs={"x": "y" * 5000}), [])])
    with metadata_only():
        meta = await store.get(Q, "j1")
        assert meta is not None and MARKER in meta.payload and "kwargs" not in meta.payload
        listed = await store.list_jobs(Q, State.WAITING)
        assert MARKER in listed[0].payload
    assert _bodies(store).gets == []
    # a patch on the metadata (AsyncMQ's save_job_result) carries the arguments over by their pointer
    assert await store.update_payload(Q, "j1", {**meta.payload, "result": 42})
    full = await store.get(Q, "j1")
    assert full is not None and full.payload["kwargs"] == {"x": "y" * 5000} and full.payload["result"] == 42
    assert len(_bodies(store).puts) == 1, "nothing uploaded again"


async def test_a_part_written_inline_again_replaces_its_body() -> None:
    store = _store()
    await store.create([new_job_record(Q, _job(result="r" * 5000), [])])
    with metadata_only():
        meta = await store.get(Q, "j1")
    assert meta is not None and set(meta.payload[MARKER]) == {"result"}
    assert await store.update_payload(Q, "j1", {**meta.payload, "result": "small"})
    raw = await store.inner.get(Q, "j1")
    assert raw is not None and MARKER not in raw.payload, "the stale result's pointer is gone"
    got = await store.get(Q, "j1")
    assert got is not None and got.payload["result"] == "small"


async def test_transition_returns_what_the_caller_wrote_and_delete_removes_the_bodies() -> None:
    store = _store()
    await store.create([new_job_record(Q, _job(kwargs={"x": "y" * 5000}), [])])
    claimed = await store.claim(Q, "j1", "tok", 1.0)
    assert claimed is not None and claimed.payload["kwargs"] == {"x": "y" * 5000}
    done = {**claimed.payload, "result": "r" * 4000}
    record = await store.transition(Q, "j1", State.COMPLETED, expect_owner="tok", payload=done)
    assert record is not None and record.payload == done
    assert len(_bodies(store).objects) == 2
    await store.create([new_job_record(Q, _job("small"), [])])
    assert await store.delete(Q, "j1") is not None
    assert _bodies(store).objects == {}, "every body of the job"


async def test_a_body_gone_at_the_claim_fails_the_job() -> None:
    store = _store()
    await store.create([new_job_record(Q, _job(kwargs={"x": "y" * 5000}), [])])
    _bodies(store).objects.clear()
    assert await store.claim(Q, "j1", "tok", 1.0) is None
    raw = await store.inner.get(Q, "j1")
    assert raw is not None and raw.state == State.FAILED and "gone from S3" in raw.payload["last_error"]


async def test_limits_refuse_before_anything_is_written() -> None:
    store = _store(max_bytes=20_000)
    with pytest.raises(PayloadTooLargeError) as raised:
        await store.create([new_job_record(Q, _job(kwargs={"x": "y" * 30_000}), [])])
    assert raised.value.limit == 20_000
    store = _store(inner_limit=2000)
    with pytest.raises(PayloadTooLargeError, match="still encodes"):  # metadata alone too large for the store
        await store.create([new_job_record(Q, _job(kwargs={"x": "y" * 5000}, deduplication="d" * 3000), [])])
    assert _bodies(store).puts == [] and await store.inner.get(Q, "j1") is None


def test_settings_and_names() -> None:
    assert S3Offload.parse("s3://b-1/x/y").prefix == "x/y/"
    assert S3Offload.parse("s3://b-1").prefix == ""
    for bad in ("s3:///p", "http://b-1/p", "s3://b-1/p?x=1"):
        with pytest.raises(ConfigurationError):
            S3Offload.parse(bad)
    for bad_bucket in ("B", "ab", "a..b", "-ab", "192.168.1.1"):
        with pytest.raises(InvalidNameError):
            S3Offload(bucket=bad_bucket)
    with pytest.raises(InvalidNameError):
        normalize_prefix("a//b")
    with pytest.raises(ConfigurationError):
        S3Offload(bucket="b-1", threshold=10, max_payload_bytes=10)
    with pytest.raises(ConfigurationError, match="below the state store"):
        OffloadingStore(MemoryStateStore(max_payload_bytes=100), S3Offload(bucket="b-1"), clients=AwsClients())
    memory = MemoryStateStore()
    assert with_offload(memory, None, clients=AwsClients()) is memory


def test_iam_statements_of_the_bucket() -> None:
    spec = S3BucketSpec("my-bucket", "p/", kms_key_id="alias/bodies")
    documents = policies([spec], Scope(region="eu-west-1", account="123456789012"))
    runtime = {s["Sid"]: s for s in documents["runtime"]["Statement"]}
    assert runtime["JobBodies"]["Resource"] == ["arn:aws:s3:::my-bucket/p/*"]
    assert runtime["JobBodies"]["Action"] == ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    assert runtime["ListJobBodies"]["Condition"] == {"StringLike": {"s3:prefix": ["p/*"]}}
    assert runtime["EncryptionKeys"]["Condition"] == {
        "ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/bodies"}
    }
    provisioning = {s["Sid"]: s for s in documents["provisioning"]["Statement"]}
    assert provisioning["CreateBodyBucket"]["Resource"] == ["arn:aws:s3:::my-bucket"]
    assert not [a for s in runtime.values() for a in s["Action"] if "Bucket" in a and a != "s3:ListBucket"]


async def test_a_state_change_fetches_no_body() -> None:
    store = _store()
    await store.create([new_job_record(Q, _job(kwargs={"x": "y" * 5000}), [])])
    record = await store.transition(Q, "j1", "cancelled", expect_states={State.WAITING})
    assert record is not None and record.state == "cancelled" and _bodies(store).gets == []


@pytest.mark.parametrize(
    "fault",
    [PermanentError("refused"), AccessDeniedError("KMS refused"), None],
    ids=["permanent", "denied", "undecodable"],
)
async def test_a_body_that_cannot_be_read_fails_the_job(fault: Exception | None) -> None:
    store = _store()
    await store.create([new_job_record(Q, _job(kwargs={"x": "y" * 5000}), [])])
    if fault is None:
        for key in _bodies(store).objects:
            _bodies(store).objects[key] = b"not json"
    _bodies(store).fault = fault
    assert await store.claim(Q, "j1", "tok", 1.0) is None
    raw = await store.inner.get(Q, "j1")
    assert raw is not None and raw.state == State.FAILED and "could not be read" in raw.payload["last_error"]


async def test_s3_away_at_the_claim_gives_the_job_back() -> None:
    store = _store()
    await store.create([new_job_record(Q, _job(kwargs={"x": "y" * 5000}), [])])
    _bodies(store).fault = TransientError("S3 away")
    with pytest.raises(TransientError):
        await store.claim(Q, "j1", "tok", 1.0)
    raw = await store.inner.get(Q, "j1")
    assert raw is not None and raw.state == State.WAITING and raw.owner is None


async def test_a_job_failed_at_the_claim_shows_that_reason_not_an_older_error_body() -> None:
    store = _store()
    old = _job(kwargs={"x": "y" * 5000}, last_error="E" * 5000, error_traceback="T" * 5000)
    await store.create([new_job_record(Q, old, [])])
    raw = await store.inner.get(Q, "j1")
    assert raw is not None and set(raw.payload[MARKER]) == {"args", "error"}
    args_key = raw.payload[MARKER]["args"]
    del _bodies(store).objects[args_key]
    assert await store.claim(Q, "j1", "tok", 1.0) is None
    got = await store.get(Q, "j1")
    assert got is not None and "gone from S3" in got.payload["last_error"] and got.payload["error_traceback"] is None


async def test_a_part_written_back_with_a_field_missing_keeps_the_other_field() -> None:
    store = _store()
    await store.create([new_job_record(Q, _job(args=["a" * 3000], kwargs={"x": "y" * 3000}), [])])
    with metadata_only():
        meta = await store.get(Q, "j1")
    assert meta is not None
    assert await store.update_payload(Q, "j1", {**meta.payload, "kwargs": {"x": "new"}})
    got = await store.get(Q, "j1")
    assert got is not None and got.payload["kwargs"] == {"x": "new"} and got.payload["args"] == ["a" * 3000]


async def test_delete_removes_the_records_bodies_only_not_those_of_a_job_re_added_with_its_id() -> None:
    store = _store()
    await store.create([new_job_record(Q, _job(kwargs={"x": "y" * 5000}), [])])
    raw = await store.inner.get(Q, "j1")
    assert raw is not None
    newer = store.bodies.key(Q, "j1", "0123456789abcdef", "args", b"{}")  # a re-added job's body, another token
    assert not newer.startswith(store.bodies.job_prefix(Q, "j1") + raw.payload[BODIES_KEY])
    _bodies(store).objects[newer] = b"{}"
    assert await store.delete(Q, "j1") is not None
    assert list(_bodies(store).objects) == [newer]


async def test_the_token_is_kept_through_a_run_and_stalled_jobs_come_whole() -> None:
    store = _store()
    await store.create([new_job_record(Q, _job(kwargs={"x": "y" * 5000}), [])])
    claimed = await store.claim(Q, "j1", "tok", 1.0)
    assert claimed is not None and BODIES_KEY in claimed.kept(), "the backend keeps the token through the run"
    (stalled,) = await store.list_stalled(10.0)
    assert stalled.payload["kwargs"] == {"x": "y" * 5000} and MARKER not in stalled.payload
    _bodies(store).fault = TransientError("S3 away")
    (stalled,) = await store.list_stalled(10.0)
    assert MARKER in stalled.payload, "S3 away: listed as stored, never an error into AsyncMQ's loop"
