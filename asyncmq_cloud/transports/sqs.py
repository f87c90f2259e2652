"""Amazon SQS transport: job references on SQS queues, one queue per AsyncMQ queue.

Operator's manual
=================

Queues
    AsyncMQ queue ``emails`` lives on the SQS queue ``{queue_prefix}emails``
    (``{queue_prefix}emails.fifo`` with ``fifo=True``) and its dead-letter queue
    ``{queue_prefix}emails-dlq`` (``-dlq.fifo``). Names are at most 80 characters
    of ``[A-Za-z0-9_-]``: AsyncMQ allows ``.`` in queue names, SQS does not, and
    the ``-dlq`` suffix must fit too (:class:`~asyncmq_cloud.errors.InvalidNameError`
    says which rule broke). Queue URLs are resolved once per process and cached.
    A missing queue raises :class:`~asyncmq_cloud.errors.ResourceMissingError`
    naming it: create it with ``asyncmq-cloud provision --queue emails``
    (development) or the Terraform module (production); ``create_missing=True``
    creates it on first use (development only). ``provision`` is idempotent.

What travels on SQS
    Only a reference: ``{"v": 1, "q": "emails", "id": "<job id>"}``, about 70
    bytes. The job itself lives in the state store (DynamoDB or Redis), so the SQS
    message size limit (1 MiB; 256 KiB on older emulators) never limits payloads.
    A message that is not such an envelope (sent by hand, by another producer or
    corrupted) is a *poison* message: it is moved to the DLQ with the reason in
    the ``asyncmq-error`` message attribute and deleted from the queue; workers
    never see it and keep running.

Visibility timeout vs job runtime
    A received message is invisible for ``visibility_timeout`` seconds (default
    30; passed on every ReceiveMessage so the transport knows the deadline).
    While a job runs, heartbeats (AsyncMQ's ``enable_stalled_check=True``) call
    :meth:`SQSTransport.extend` (``ChangeMessageVisibility``), which is lazy: it
    calls SQS only when less than half of the requested extension remains, so
    jobs shorter than about half the visibility timeout cost no extend call. A
    message that reappears while its job runs cannot start a second run: the
    receiving worker must *claim* the job in the state store first. If the job's
    lease (last heartbeat) is fresh the message is put back until the lease would
    expire; if it is stale (the worker died) the job is taken over
    (``docs/decisions.md`` entry 18). So jobs longer than ``visibility_timeout``
    need heartbeats, and every reappearance counts towards ``max_receive_count``
    (default 5), after which SQS moves the message to the DLQ: repeated crashes
    end there. SQS caps visibility at 12 hours *from receipt*; a job that runs
    longer keeps running, the transport logs one warning, and the message
    reappears and is handled as above.

Delays
    Standard queues hold delays of up to 900 s natively (``DelaySeconds``,
    rounded up to whole seconds so a job never arrives before its due time);
    longer delays go to the delay store (Redis sorted set or DynamoDB table) and
    are sent when due by ``promote_due_delayed`` / ``asyncmq-cloud scanner run``.
    FIFO queues have no per-message delay: every delay goes to the delay store.

FIFO queues
    ``fifo=True`` uses ``.fifo`` queues. ``MessageGroupId`` is ``fifo_group``
    (default: the AsyncMQ queue name, i.e. strict order for the queue: one
    message in flight at a time) or, with ``fifo_group="job"``, the job id (no
    ordering, full parallelism). ``MessageDeduplicationId`` is a fresh id per
    *logical* send, not the job id: a retried job is sent again with the same id
    within the 5-minute deduplication window and SQS would silently drop it. SDK
    retries of one request reuse the id and are still deduplicated.

API calls per job (what SQS bills)
    Sends and deletes are batched (up to 10): a send goes in the next turn of the event
    loop when no send of its queue is in flight (``linger``), else with the next batch
    (at most ``busy_linger``); deletes are queued (``ack_linger``) and nobody waits for
    them. A receive takes up to 10 messages, never more than the worker's free capacity.
    ``docs/sqs.md`` has the costs and the table of knobs.

Priority lanes
    ``priority_lanes=N`` gives a queue N SQS queues, one per band of AsyncMQ priorities,
    read most urgent first with a bounded share for the others (``_sqs_lanes.py``).

Fair queues
    ``fair_key`` (a payload path or a function of the payload) sends each job's tenant as
    the ``MessageGroupId`` of its reference on a standard queue (``_sqs_fair.py``).

IAM actions
    The runtime and provisioning policies are in ``resources/iam.py``
    (``asyncmq-cloud provision --print-iam``); ``sqs:PurgeQueue`` (``purge``) is in neither.

KMS
    ``kms_key_id`` enables SSE-KMS on the queue and its DLQ at provision time;
    ``kms_data_key_reuse_seconds`` (60 .. 86400) trades KMS calls for key reuse.
    A KMS error (disabled key, missing grant) raises
    :class:`~asyncmq_cloud.errors.AccessDeniedError` that says to check the key
    policy. Without ``kms_key_id`` SQS-managed encryption applies.

Errors
    Every SDK error goes through :func:`asyncmq_cloud.aws.translate_error`;
    throttling and 5xx are retried by botocore's standard/adaptive retry mode
    (``AwsClients(retry_mode=...)``), never by hand-written loops (except batch
    entries that SQS itself reports as failed without sender fault, which are
    re-sent up to :data:`BATCH_ENTRY_ATTEMPTS` times).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from asyncmq_cloud.aws import AwsClients, AwsComponent, translated
from asyncmq_cloud.core.records import Delivery, TransportCapabilities
from asyncmq_cloud.errors import ClosedError
from asyncmq_cloud.resources import SqsQueueSpec, validate_sqs_queue_name
from asyncmq_cloud.transports._batcher import LingerBatcher
from asyncmq_cloud.transports._sqs_calls import (
    batch_call,
    change_visibility,
    drop_stale,
    log_failed_delete,
    send_one,
)
from asyncmq_cloud.transports._sqs_config import (
    MAX_BATCH_ENTRIES,
    MAX_DELAY_SECONDS,
    MAX_RECEIVE_MESSAGES,
    MAX_VISIBILITY_SECONDS,
    MAX_WAIT_SECONDS,
    SQSTransportConfig,
    delay_attributes,
)
from asyncmq_cloud.transports._sqs_fair import fair_key_function, with_groups
from asyncmq_cloud.transports._sqs_lanes import by_lane, lane_stats, lane_suffix, receive_lanes
from asyncmq_cloud.transports._sqs_messages import (
    RECEIVE_ATTRIBUTES,
    SQSReceipt,
    capped_visibility,
    encode_envelope,
    read_messages,
    send_entries,
    to_dlq,
)
from asyncmq_cloud.transports._sqs_queues import provision_queue, queue_spec, queue_url

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

    from asyncmq_cloud.core.protocols import ResourceSpec

logger = logging.getLogger("asyncmq_cloud.transports.sqs")


class SQSTransport(AwsComponent):
    """Job references on Amazon SQS (see the module docstring).

    Args:
        config: settings; keyword ``options`` override or replace it.
        clients: a shared, caller-owned :class:`AwsClients` (not closed by ``close()``).
        endpoint_url: endpoint of a private :class:`AwsClients`.
        region_name: region of a private :class:`AwsClients`.
        **options: fields of :class:`SQSTransportConfig`.
    """

    def __init__(
        self,
        config: SQSTransportConfig | None = None,
        *,
        clients: AwsClients | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        **options: Any,
    ) -> None:
        base = config.model_dump() if config is not None else {}
        self.config = SQSTransportConfig.build(**{**base, **options})
        self.fifo = self.config.fifo
        #: SQS holds delays itself up to 900 s on standard queues, none on FIFO; ``stats`` counts by kind.
        native_delay = 0.0 if self.fifo else float(MAX_DELAY_SECONDS)
        n = self.config.priority_lanes
        self.capabilities = TransportCapabilities(
            native_delay, supports_fifo=True, has_stats=True, priority_lanes=n,
            fair_key=fair_key_function(self.config.fair_key), read_ahead=True,
        )  # fmt: skip
        self._bounds = self.config.bounds()
        self.turns: dict[str, int] = {}  # receives made per queue: their lane order (``_sqs_lanes``)
        self.empty_until: dict[tuple[str, int | None], float] = {}  # lanes found empty: not polled till then
        super().__init__()
        self._use_clients(clients, endpoint_url=endpoint_url, region_name=region_name, what="transport")
        self._urls: dict[str, str] = {}
        self._url_lock = asyncio.Lock()
        self._sends: LingerBatcher[str, dict[str, Any], None] = LingerBatcher(
            self._send_batch,
            max_size=MAX_BATCH_ENTRIES,
            linger=self.config.linger,
            busy_linger=max(self.config.linger, self.config.busy_linger),
            name="SQS send batcher",
            adaptive=True,
        )
        self._paced_until: dict[str, float] = {}
        self._deletes: LingerBatcher[str, dict[str, Any], None] = LingerBatcher(
            self._delete_batch, max_size=MAX_BATCH_ENTRIES, linger=self.config.ack_linger, name="SQS delete batcher"
        )

    # -- lifecycle ---------------------------------------------------------------------
    async def _open(self, stack: AsyncExitStack) -> None:
        """Open the SQS client now: bad settings fail at ``start()``, not at the first job."""
        await super()._open(stack)
        await self._clients.sqs()

    async def _shutdown(self) -> None:
        """Send every pending message and delete; ``close()`` then closes own clients."""
        try:
            await self._sends.close()
        finally:
            await self._deletes.close()

    async def flush(self) -> None:
        """Make every pending send and delete now and wait for them (``close`` does this too)."""
        await self._sends.drain()
        await self._deletes.drain()

    async def _client(self) -> SQSClient:
        return await self._sqs()

    # -- names and URLs ------------------------------------------------------------------
    def queue_name(self, queue: str, lane: int | None = None) -> str:
        """The SQS queue name of an AsyncMQ queue (of its priority ``lane``; validated)."""
        suffix = "" if lane is None else lane_suffix(self._bounds, lane)
        name = self.config.queue_prefix + queue + suffix + (".fifo" if self.fifo else "")
        return validate_sqs_queue_name(name, fifo=self.fifo)

    def lane_names(self, queue: str) -> dict[int, str]:
        """The SQS queue of each priority lane of ``queue`` (``{}`` with one lane)."""
        lanes = self.config.priority_lanes
        return {lane: self.queue_name(queue, lane) for lane in range(lanes)} if lanes > 1 else {}

    def spec(self, queue: str) -> SqsQueueSpec:
        """The queue + DLQ (+ lanes) description ``provision`` creates for ``queue``."""
        name = self.queue_name(queue)
        return queue_spec(self.config, name, tuple(n for n in self.lane_names(queue).values() if n != name))

    def _resource(self, queue: str) -> str:
        return f"SQS queue {self.queue_name(queue)!r} of AsyncMQ queue {queue!r}"

    def _create_hint(self, queue: str) -> str:
        """How to create the queue of ``queue`` (``provision()`` without names creates no queue)."""
        return f"`await backend.provision([{queue!r}])` / `asyncmq-cloud provision --queue {queue}` (development)"

    def _translated(self, queue: str) -> contextlib.AbstractContextManager[None]:
        """Translate SDK errors of a call on the queue of ``queue``, naming it and how to create it."""
        return translated(self._resource(queue), create=self._create_hint(queue))

    # -- provisioning --------------------------------------------------------------------------
    def check_queue(self, queue: str) -> None:
        """Raise ``InvalidNameError`` if ``queue`` cannot be carried (no I/O)."""
        self.spec(queue)  # builds and validates the queue and DLQ names

    def resources(self, queues: Sequence[str]) -> list[ResourceSpec]:
        """The queue (and its DLQ) of each of ``queues``."""
        return [self.spec(queue) for queue in queues]

    async def provision(self, queue: str) -> None:
        """Create the queue and its DLQ (with the redrive policy) if missing; idempotent."""
        url = await provision_queue(self, queue)
        self._urls[queue] = url

    # -- send ----------------------------------------------------------------------------------
    async def send(
        self,
        queue: str,
        job_ids: Sequence[str],
        delay: float = 0.0,
        priorities: Sequence[object] | None = None,
        groups: Sequence[str | None] | None = None,
    ) -> None:
        """Send one reference per job id (to the lane of its priority, with ``priority_lanes``;
        with its fair-queue group, with ``fair_key``); raise the first failed entry's error
        (after all were tried)."""
        if not job_ids:
            return
        extra = delay_attributes(delay, self.fifo)
        lanes = by_lane(self._bounds, job_ids, priorities)
        group_of = dict(zip(job_ids, groups, strict=True)) if groups is not None else None
        results = await asyncio.gather(
            *(self._send_to(queue, lane, ids, extra, group_of) for lane, ids in lanes.items()), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _send_to(
        self, queue: str, lane: int | None, job_ids: list[str], extra: dict[str, Any], group_of: Any = None
    ) -> None:
        self.empty_until.pop((queue, lane), None)
        url = await queue_url(self, queue, lane)
        entries = send_entries(queue, job_ids, extra, self.fifo, self.config.fifo_group)
        if group_of is not None:
            entries = with_groups(entries, [group_of[job_id] for job_id in job_ids])
        await self._sends.submit(url, entries)

    async def _send_batch(self, url: str, entries: list[dict[str, Any]]) -> list[BaseException | None]:
        client = await self._clients.sqs()
        if len(entries) == 1:  # a lone producer's send (decision 75)
            return await send_one(client, url, entries[0], self.config.direct_send)
        return await batch_call(client.send_message_batch, url, entries, "SendMessageBatch")

    # -- receive -------------------------------------------------------------------------------
    async def receive(self, queue: str, max_messages: int, wait: float) -> list[Delivery]:
        """Up to ``min(max_messages, 10)`` deliveries; long-polls ``int(min(wait, 20))`` seconds."""
        if max_messages <= 0:
            return []
        wait_until = self._paced_until.pop(queue, 0.0)
        if wait_until > time.monotonic():
            await asyncio.sleep(wait_until - time.monotonic())
        started = time.monotonic()
        if self.config.priority_lanes > 1:
            deliveries = await receive_lanes(self, queue, max_messages, wait)
        else:
            deliveries = await self.receive_from(queue, None, max_messages, wait)
        asked = min(max_messages, MAX_RECEIVE_MESSAGES)
        if 0 < len(deliveries) < asked and self.config.receive_pacing > 0:
            self._paced_until[queue] = started + self.config.receive_pacing
        return deliveries

    async def receive_from(self, queue: str, lane: int | None, max_messages: int, wait: float) -> list[Delivery]:
        """One ``ReceiveMessage`` on the SQS queue of ``queue`` (of its priority ``lane``)."""
        url = await queue_url(self, queue, lane)
        client = await self._client()
        started = time.monotonic()
        with self._translated(queue):
            reply = await client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(max_messages, MAX_RECEIVE_MESSAGES),
                WaitTimeSeconds=int(min(max(wait, 0.0), MAX_WAIT_SECONDS)),
                VisibilityTimeout=self.config.visibility_timeout,
                AttributeNames=RECEIVE_ATTRIBUTES,  # the deprecated name: emulators need it
                MessageAttributeNames=["All"],
            )
        return await read_messages(self, queue, url, reply.get("Messages", []), started)

    # -- ack / visibility ----------------------------------------------------------------------
    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Queue the deletes and return: they are batched over ``ack_linger`` and logged if they fail.

        The caller does not wait: the job's end is already written in the state
        store, and a delete that fails or is lost in a crash only lets the message
        reappear, when the next worker's claim fails and deletes it. ``close()``
        and ``flush()`` send every queued delete.
        """
        if self._closed:
            raise ClosedError("SQSTransport is closed; create a new one")
        by_url: dict[str, list[dict[str, Any]]] = {}
        for delivery in deliveries:
            receipt: SQSReceipt = delivery.receipt
            by_url.setdefault(receipt.url, []).append({"ReceiptHandle": receipt.handle})
        for url, entries in by_url.items():
            self._deletes.post(url, entries, log_failed_delete)

    async def _delete_batch(self, url: str, entries: list[dict[str, Any]]) -> list[BaseException | None]:
        client = await self._clients.sqs()
        results = await batch_call(client.delete_message_batch, url, entries, "DeleteMessageBatch")
        return drop_stale(results, url)

    async def extend(self, delivery: Delivery, seconds: float) -> None:
        """Keep the message invisible for about ``seconds`` more (lazy; capped at 12 h from receipt)."""
        now = time.monotonic()
        visible_until = now if delivery.lease_until is None else delivery.lease_until
        if visible_until - now >= seconds * self.config.extend_threshold:
            return
        timeout = capped_visibility(delivery, seconds, now)
        if timeout <= 0:
            return
        if await change_visibility(self, delivery, timeout):
            delivery.lease_until = now + timeout

    async def release(self, delivery: Delivery, delay: float = 0.0) -> None:
        """Make the message visible again after ``delay`` seconds (0 = now)."""
        now = time.monotonic()
        timeout = capped_visibility(delivery, delay, now) if delay > 0 else 0
        if await change_visibility(self, delivery, timeout):
            delivery.lease_until = now + timeout

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move a delivered reference to the DLQ with ``reason``, then delete it from the queue."""
        body = encode_envelope(delivery.queue, delivery.job_id)
        await to_dlq(self, delivery.queue, body, reason, delivery.receive_count)
        await self.ack([delivery])

    # -- inspection -------------------------------------------------------------------------------
    async def stats(self, queue: str) -> dict[str, int]:
        """SQS's approximate counts: ``visible``, ``in_flight`` and ``delayed`` messages (of every lane)."""
        return await lane_stats(self, queue)

    async def depth(self, queue: str) -> int:
        """Approximate number of messages on the queue (visible + in flight + delayed)."""
        return sum((await self.stats(queue)).values())

    async def purge(self, queue: str) -> None:
        """``PurgeQueue`` of every lane (SQS allows one per queue every 60 s)."""
        client = await self._client()
        for lane in self.lane_names(queue) or [None]:
            url = await queue_url(self, queue, lane)
            with self._translated(queue):
                await client.purge_queue(QueueUrl=url)


__all__ = ["MAX_VISIBILITY_SECONDS", "SQSTransport", "SQSTransportConfig"]
