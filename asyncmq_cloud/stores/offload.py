"""The S3 claim check: payloads and results too large for the state store live in S3.

::

    SQSBackend(store="dynamodb://asyncmq-jobs", offload="s3://my-bucket/asyncmq/")
    DynamoDBBackend(offload=S3Offload(bucket="my-bucket", threshold=128 * 1024))

:class:`OffloadingStore` wraps any :class:`~asyncmq_cloud.core.protocols.StateStore`. A job
whose encoded payload exceeds ``threshold`` keeps the bulky parts of it in S3 — its
``args``/``kwargs``, its ``result``, its ``last_error``/``error_traceback``, the largest first
until the rest fits — and the record keeps everything else plus, under ``_asyncmq_offload``,
the key of each part's body. The body is written **before** the record (a record never points
at a body that is not there yet) and read back on the claim, ``get_job``, and the listings
that hand job dicts to AsyncMQ (``list_jobs``, the paged listing); reads that look only at
metadata (``clean``/``purge``, the repair pass, the stalled scan, the cancel check) never fetch
a body (:mod:`asyncmq_cloud.core.bodies`). Keys are content-addressed
(:mod:`asyncmq_cloud.stores._s3_bodies`): an unchanged part written again by the process that
read or wrote it (the arguments at the job's completion) is not uploaded again.

Deletion: ``remove_job`` and ``clean``/``purge`` delete every body of the job (its whole
prefix). Bodies of records deleted by the store's retention TTL, and bodies written by a
call whose record write then failed (a crash, a refused condition), are left to the bucket's
lifecycle rule, which expires objects ``expire_days`` after their last write: choose it longer
than any job lives (its delay, its wait and the store's retention).

A body that is gone when a worker claims its job (the lifecycle rule expired it) fails the
job (``failed``, with the reason in ``last_error``) instead of running it without arguments;
``get_job`` and listings return such a job without the missing fields and log a warning.

Limits: ``max_payload_bytes`` (default 32 MiB) refuses a larger payload with
``PayloadTooLargeError`` before anything is written, as does a record whose metadata alone
exceeds the state store's own limit. Repeatable definitions are never offloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from asyncmq.core.enums import State

from asyncmq_cloud.aws import AwsClients
from asyncmq_cloud.core.bodies import wants_bodies
from asyncmq_cloud.core.records import JobRecord
from asyncmq_cloud.core.validation import decode_payload, encode_payload
from asyncmq_cloud.errors import CloudBackendError, ConfigurationError, PayloadTooLargeError
from asyncmq_cloud.resources.s3 import S3BucketSpec, normalize_prefix
from asyncmq_cloud.stores._forwarding import ForwardingStore
from asyncmq_cloud.stores._s3_bodies import S3Bodies

if TYPE_CHECKING:
    from asyncmq_cloud.core.protocols import ResourceSpec, StateStore

logger = logging.getLogger("asyncmq_cloud.offload")

#: The payload key that holds ``{part: S3 key}`` of a record's offloaded parts.
MARKER = "_asyncmq_offload"
#: The parts of an AsyncMQ job dict that may be offloaded, and their fields.
PARTS: dict[str, tuple[str, ...]] = {
    "args": ("args", "kwargs"),
    "result": ("result",),
    "error": ("last_error", "error_traceback"),
}
#: Most bodies one listing fetches at once.
_FETCH_CONCURRENCY = 16


@dataclass(frozen=True)
class S3Offload:
    """Where and when payloads go to S3 (the ``offload`` setting of every backend).

    Attributes:
        bucket: the S3 bucket.
        prefix: key prefix (``asyncmq/`` by default; ``""`` for the bucket's root).
        threshold: a payload encoding to more bytes is offloaded (default 64 KiB); it must be
            below the state store's ``max_payload_bytes``.
        max_payload_bytes: a payload encoding to more is refused (``PayloadTooLargeError``).
        kms_key_id: the bucket's SSE-KMS key for ``provision`` (``None``: ``aws/s3``).
        expire_days: the lifecycle rule ``provision`` writes: bodies expire this many days
            after their last write. Longer than any job lives.
    """

    bucket: str
    prefix: str = "asyncmq/"
    threshold: int = 64 * 1024
    max_payload_bytes: int = 32 * 1024 * 1024
    kms_key_id: str | None = None
    expire_days: int = 30

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", normalize_prefix(self.prefix))
        if not 1 <= self.threshold < self.max_payload_bytes <= 5 * 1024**3:
            raise ConfigurationError(
                f"offload threshold ({self.threshold}) must be positive and below max_payload_bytes "
                f"({self.max_payload_bytes}), which S3 limits to 5 GiB"
            )
        self.spec()  # checks the bucket name and expire_days

    @classmethod
    def parse(cls, value: str | S3Offload) -> S3Offload:
        """``s3://BUCKET/PREFIX`` (defaults otherwise) or an :class:`S3Offload` as is."""
        if isinstance(value, S3Offload):
            return value
        parts = urlsplit(str(value))
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ConfigurationError(f"offload must be s3://BUCKET/PREFIX or an S3Offload, not {str(value)[:80]!r}")
        return cls(bucket=parts.netloc, prefix=parts.path)

    def spec(self) -> S3BucketSpec:
        return S3BucketSpec(self.bucket, self.prefix, self.kms_key_id, self.expire_days)


class OffloadingStore(ForwardingStore):
    """A state store whose large payload parts live in S3 (the module docstring has the rules)."""

    def __init__(self, inner: StateStore, offload: S3Offload, *, clients: AwsClients) -> None:
        super().__init__(inner)
        if offload.threshold >= inner.max_payload_bytes:
            raise ConfigurationError(
                f"offload threshold ({offload.threshold}) must be below the state store's max_payload_bytes "
                f"({inner.max_payload_bytes})"
            )
        self.offload = offload
        self.max_payload_bytes = offload.max_payload_bytes
        self.bodies = S3Bodies(offload.spec(), clients=clients)

    async def start(self) -> None:
        await self.inner.start()
        await self.bodies.start()

    async def close(self) -> None:
        try:
            await self.bodies.close()
        finally:
            await self.inner.close()

    async def provision(self) -> None:
        await self.inner.provision()
        await self.bodies.provision()

    def resources(self, queues: Sequence[str]) -> list[ResourceSpec]:
        return [*self.inner.resources(queues), self.bodies.spec]

    # -- writes: bodies first, then the record -----------------------------------------
    async def create(
        self,
        records: Sequence[JobRecord],
        deps: Mapping[str, Collection[str]] | None = None,
        *,
        unsent: bool = False,
        atomic: bool = True,
    ) -> None:
        plans = [self._plan(r.queue, r.id, r.payload) for r in records]
        await asyncio.gather(*(self._write(plan, force=True) for plan in plans))
        packed = [replace(r, payload=plan.payload) for r, plan in zip(records, plans, strict=True)]
        await self.inner.create(packed, deps, unsent=unsent, atomic=atomic)

    async def transition(
        self,
        queue: str,
        job_id: str,
        to_state: str,
        *,
        expect_states: Collection[str] | None = None,
        expect_owner: str | None = None,
        payload: dict[str, Any] | None = None,
        run_at: float | None = None,
        unsent: bool = False,
    ) -> JobRecord | None:
        packed = None if payload is None else await self._pack(queue, job_id, payload)
        record = await self.inner.transition(
            queue, job_id, to_state, expect_states=expect_states, expect_owner=expect_owner, payload=packed,
            run_at=run_at, unsent=unsent,
        )  # fmt: skip
        if record is None:
            return None
        if payload is not None:
            return replace(record, payload=payload)  # what the caller wrote, bodies included
        return await self._unpack(record) if wants_bodies() else record

    async def update_payload(self, queue: str, job_id: str, payload: dict[str, Any]) -> bool:
        return await self.inner.update_payload(queue, job_id, await self._pack(queue, job_id, payload))

    async def delete(self, queue: str, job_id: str, expect_state: str | None = None) -> JobRecord | None:
        record = await self.inner.delete(queue, job_id, expect_state)
        if record is not None and record.payload.get(MARKER):
            try:
                await self.bodies.delete_job(queue, job_id)
            except CloudBackendError as exc:  # the record is gone: its bodies expire with the lifecycle rule
                logger.warning("bodies of %s/%s left to the bucket's lifecycle rule: %s", queue, job_id, exc)
        return record

    # -- reads: bodies fetched unless only metadata is wanted ---------------------------
    async def claim(
        self, queue: str, job_id: str, token: str, now: float, *, stale_before: float | None = None
    ) -> JobRecord | None:
        record = await self.inner.claim(queue, job_id, token, now, stale_before=stale_before)
        if record is None or not record.payload.get(MARKER):
            return record
        try:
            unpacked = await self._unpack(record)
        except CloudBackendError:  # S3 away: give the job back at once rather than hold it for a lease
            with contextlib.suppress(CloudBackendError):
                await self.inner.transition(queue, job_id, State.WAITING, expect_owner=token)
            raise
        missing = unpacked.payload.get(MARKER)
        if not missing:
            return unpacked
        reason = f"the job's {', '.join(sorted(missing))} body is gone from S3 (expired by the lifecycle rule?)"
        logger.error("failing %s/%s instead of running it: %s", queue, job_id, reason)
        failed = {**record.payload, "last_error": reason, "error_traceback": None}
        await self.inner.transition(queue, job_id, State.FAILED, expect_owner=token, payload=failed)
        return None

    async def get(self, queue: str, job_id: str) -> JobRecord | None:
        record = await self.inner.get(queue, job_id)
        return record if record is None or not wants_bodies() else await self._unpack(record)

    async def list_jobs(self, queue: str, state: str) -> list[JobRecord]:
        return await self._unpack_all(await self.inner.list_jobs(queue, state))

    async def list_page(self, queue: str, state: str, offset: int, limit: int, newest_first: bool) -> list[JobRecord]:
        return await self._unpack_all(await self.inner.list_page(queue, state, offset, limit, newest_first))

    # -- the claim check itself ---------------------------------------------------------
    async def _pack(self, queue: str, job_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        plan = self._plan(queue, job_id, payload)
        await self._write(plan)
        return plan.payload

    def _plan(self, queue: str, job_id: str, payload: dict[str, Any]) -> _Plan:
        """The record's payload and the bodies to write first; refuses what cannot fit (no I/O)."""
        size = _size(payload)
        if size > self.offload.max_payload_bytes:
            raise PayloadTooLargeError(
                f"job {job_id!r} encodes to {size} bytes; with the S3 claim check at most "
                f"{self.offload.max_payload_bytes} are accepted (offload max_payload_bytes)",
                size=size,
                limit=self.offload.max_payload_bytes,
            )
        if size <= self.offload.threshold and MARKER not in payload:
            return _Plan(payload, [])  # the common case: one encoding, nothing to do
        body = {key: value for key, value in payload.items() if key != MARKER}
        # A part written inline again (a new result) replaces its body: the pointer goes.
        carried = {p: k for p, k in dict(payload.get(MARKER) or {}).items() if not _inline(p, body)}
        chunks = sorted(_chunks(body), key=lambda chunk: len(chunk[1]), reverse=True)
        writes: list[tuple[str, str, bytes]] = []
        for part, data in chunks:
            if _size({**body, MARKER: carried}) <= self.offload.threshold:
                break
            key = self.bodies.key(queue, job_id, part, data)
            writes.append((part, key, data))
            carried[part] = key
            body = {k: v for k, v in body.items() if k not in PARTS[part]}
        packed = {**body, MARKER: carried} if carried else body
        rest = _size(packed)
        if rest > self.inner.max_payload_bytes:
            raise PayloadTooLargeError(
                f"job {job_id!r} still encodes to {rest} bytes with its arguments, result and error in S3; "
                f"the state store accepts {self.inner.max_payload_bytes}",
                size=rest,
                limit=self.inner.max_payload_bytes,
            )
        return _Plan(packed, [(queue, job_id, part, data) for part, _, data in writes])

    async def _write(self, plan: _Plan, *, force: bool = False) -> None:
        await asyncio.gather(*(self.bodies.put(*write, force=force) for write in plan.writes))

    async def _unpack(self, record: JobRecord) -> JobRecord:
        """``record`` with its offloaded parts read back; parts whose body is gone stay in the marker."""
        marker = record.payload.get(MARKER)
        if not isinstance(marker, dict) or not marker:
            return record
        parts = list(marker.items())
        datas = await asyncio.gather(*(self.bodies.get(str(key)) for _, key in parts))
        payload = {key: value for key, value in record.payload.items() if key != MARKER}
        missing = {}
        for (part, key), data in zip(parts, datas, strict=True):
            if data is None:
                missing[part] = key
            else:
                payload.update(decode_payload(data))
        if missing:
            logger.warning("%s/%s: the body of %s is gone from S3", record.queue, record.id, ", ".join(sorted(missing)))
            payload[MARKER] = missing
        return replace(record, payload=payload)

    async def _unpack_all(self, records: list[JobRecord]) -> list[JobRecord]:
        if not wants_bodies() or not any(r.payload.get(MARKER) for r in records):
            return records
        gate = asyncio.Semaphore(_FETCH_CONCURRENCY)

        async def one(record: JobRecord) -> JobRecord:
            async with gate:
                return await self._unpack(record)

        return list(await asyncio.gather(*(one(record) for record in records)))


@dataclass(frozen=True)
class _Plan:
    """A payload as the record will hold it, and the ``(queue, job id, part, bytes)`` to put first."""

    payload: dict[str, Any]
    writes: list[tuple[str, str, str, bytes]]


def _inline(part: str, body: Mapping[str, Any]) -> bool:
    return any(field in body for field in PARTS.get(part, ()))


def _chunks(body: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """Each part with a non-empty value in ``body``, encoded (AsyncMQ's JSON settings)."""
    chunks = []
    for part, fields in PARTS.items():
        values = {field: body[field] for field in fields if field in body}
        if any(value not in (None, "", [], {}) for value in values.values()):
            chunks.append((part, encode_payload(values).encode("utf-8")))
    return chunks


def _size(payload: dict[str, Any]) -> int:
    return len(encode_payload(payload).encode("utf-8"))


def with_offload(store: StateStore, offload: str | S3Offload | None, *, clients: AwsClients) -> StateStore:
    """``store`` wrapped in the claim check when ``offload`` is set, else ``store`` itself."""
    if offload is None:
        return store
    return OffloadingStore(store, S3Offload.parse(offload), clients=clients)


__all__ = ["MARKER", "PARTS", "OffloadingStore", "S3Offload", "with_offload"]
