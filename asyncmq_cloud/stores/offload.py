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
that hand job dicts to AsyncMQ (``list_jobs``, the paged listing, the stalled jobs); reads
that look only at metadata (``clean``/``purge``, the repair pass, the cancel check, state
changes without a payload) never fetch a body (:mod:`asyncmq_cloud.core.bodies`). Keys are
content-addressed under the record's token (:mod:`asyncmq_cloud.stores._offload_plan`,
:mod:`asyncmq_cloud.stores._s3_bodies`): the arguments written again (unchanged at the
completion) cost a ``HeadObject``, not an upload.

Deletion: ``remove_job`` and ``clean``/``purge`` delete every body of the record (its token's
prefix). Bodies of records deleted by the store's retention TTL, and bodies written by a
call whose record write then failed (a crash, a refused condition), are left to the bucket's
lifecycle rule, which expires objects ``expire_days`` after their last write: choose it longer
than any job lives (its delay, its wait and the store's retention).

A body that cannot be read when a worker claims its job fails the job (``failed``, with the
reason in ``last_error``) instead of running it without arguments, unless S3 is only away
(a transient error): then the job goes back to ``waiting`` at once. ``get_job`` and listings
return a job whose body is gone without the missing fields and log a warning.

Limits: ``max_payload_bytes`` (default 32 MiB) refuses a larger payload with
``PayloadTooLargeError`` before anything is written, as does a record whose metadata alone
exceeds the state store's own limit. Repeatable definitions are never offloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from asyncmq.core.enums import State

from asyncmq_cloud.aws import AwsClients
from asyncmq_cloud.core.bodies import wants_bodies
from asyncmq_cloud.core.records import JobRecord
from asyncmq_cloud.errors import CloudBackendError, ConfigurationError, TransientError
from asyncmq_cloud.resources.s3 import S3BucketSpec, normalize_prefix
from asyncmq_cloud.stores._forwarding import ForwardingStore
from asyncmq_cloud.stores._offload_plan import MARKER, PARTS, Plan, body_token, failed_payload, joined, plan
from asyncmq_cloud.stores._s3_bodies import S3Bodies

if TYPE_CHECKING:
    from asyncmq_cloud.core.protocols import ResourceSpec, StateStore

logger = logging.getLogger("asyncmq_cloud.offload")

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
        await asyncio.gather(*(self._write(each, force=True) for each in plans))
        packed = [replace(r, payload=each.payload) for r, each in zip(records, plans, strict=True)]
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
        if record is None or payload is None:
            return record  # without a payload: a state change, whose callers read no body
        return replace(record, payload=payload)  # what the caller wrote, bodies included

    async def update_payload(self, queue: str, job_id: str, payload: dict[str, Any]) -> bool:
        return await self.inner.update_payload(queue, job_id, await self._pack(queue, job_id, payload))

    async def delete(self, queue: str, job_id: str, expect_state: str | None = None) -> JobRecord | None:
        record = await self.inner.delete(queue, job_id, expect_state)
        if record is not None and record.payload.get(MARKER):
            try:
                await self.bodies.delete_job(queue, job_id, body_token(record.payload))
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
        except TransientError:  # S3 away: give the job back at once rather than hold it for a lease
            with contextlib.suppress(CloudBackendError):
                await self.inner.transition(queue, job_id, State.WAITING, expect_owner=token)
            raise
        except Exception as exc:  # refused, or a body that does not decode: it cannot run, ever
            await self._fail(record, token, f"the job's body could not be read from S3: {exc}")
            return None
        missing = unpacked.payload.get(MARKER)
        if not missing:
            return unpacked
        reason = f"the job's {', '.join(sorted(missing))} body is gone from S3 (expired by the lifecycle rule?)"
        await self._fail(record, token, reason)
        return None

    async def _fail(self, record: JobRecord, token: str, reason: str) -> None:
        """Fail a claimed job that cannot run, with ``reason`` (a job never runs without its arguments)."""
        logger.error("failing %s/%s instead of running it: %s", record.queue, record.id, reason)
        failed = failed_payload(record.payload, reason, time.time())
        await self.inner.transition(record.queue, record.id, State.FAILED, expect_owner=token, payload=failed)

    async def get(self, queue: str, job_id: str) -> JobRecord | None:
        record = await self.inner.get(queue, job_id)
        return record if record is None or not wants_bodies() else await self._unpack(record)

    async def list_jobs(self, queue: str, state: str) -> list[JobRecord]:
        return await self._unpack_all(await self.inner.list_jobs(queue, state))

    async def list_page(self, queue: str, state: str, offset: int, limit: int, newest_first: bool) -> list[JobRecord]:
        return await self._unpack_all(await self.inner.list_page(queue, state, offset, limit, newest_first))

    async def list_stalled(self, older_than: float) -> list[JobRecord]:
        """Whole for AsyncMQ's stalled events when S3 answers; else as stored (the re-enqueue writes
        the pointers back), so an S3 error never reaches AsyncMQ's stalled-job loop."""
        records = await self.inner.list_stalled(older_than)
        try:
            return await self._unpack_all(records)
        except CloudBackendError as exc:
            logger.warning("stalled jobs listed without their bodies: %s", exc)
            return records

    # -- the claim check itself ---------------------------------------------------------
    async def _pack(self, queue: str, job_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        planned = self._plan(queue, job_id, payload)
        await self._write(planned)
        return planned.payload

    def _plan(self, queue: str, job_id: str, payload: dict[str, Any]) -> Plan:
        limits = (self.offload.max_payload_bytes, self.inner.max_payload_bytes)
        return plan(queue, job_id, payload, threshold=self.offload.threshold, limits=limits, key_of=self.bodies.key)

    async def _write(self, planned: Plan, *, force: bool = False) -> None:
        """Put each body; a rewrite of the arguments (unchanged at a retry or the completion) is
        checked first, a result or error (new at that write) is put at once."""
        writes = planned.writes
        await asyncio.gather(*(self.bodies.put(key, data, force=force or part != "args") for part, key, data in writes))

    async def _unpack(self, record: JobRecord) -> JobRecord:
        """``record`` with its offloaded parts read back; parts whose body is gone stay in the marker."""
        marker = record.payload.get(MARKER)
        if not isinstance(marker, dict) or not marker:
            return record
        parts = [(str(part), str(key)) for part, key in marker.items()]
        datas = await asyncio.gather(*(self.bodies.get(key) for _, key in parts))
        payload = joined(record.payload, [(part, key, data) for (part, key), data in zip(parts, datas, strict=True)])
        if MARKER in payload:
            logger.warning("%s/%s: the body of %s is gone from S3", record.queue, record.id, ", ".join(payload[MARKER]))
        return replace(record, payload=payload)

    async def _unpack_all(self, records: list[JobRecord]) -> list[JobRecord]:
        if not wants_bodies() or not any(r.payload.get(MARKER) for r in records):
            return records
        gate = asyncio.Semaphore(_FETCH_CONCURRENCY)

        async def one(record: JobRecord) -> JobRecord:
            async with gate:
                return await self._unpack(record)

        return list(await asyncio.gather(*(one(record) for record in records)))


def with_offload(store: StateStore, offload: str | S3Offload | None, *, clients: AwsClients) -> StateStore:
    """``store`` wrapped in the claim check when ``offload`` is set, else ``store`` itself."""
    if offload is None:
        return store
    return OffloadingStore(store, S3Offload.parse(offload), clients=clients)


__all__ = ["MARKER", "PARTS", "OffloadingStore", "S3Offload", "with_offload"]
