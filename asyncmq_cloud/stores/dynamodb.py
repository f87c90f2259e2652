"""DynamoDB :class:`~asyncmq_cloud.core.protocols.StateStore`: one table holds every job record.

Operator's manual
=================

Table (single-table design, described once in :func:`asyncmq_cloud.resources.jobs_table`;
create it with ``await store.provision()`` or ``terraform/``). Keys are strings ``pk``/``sk``:

==============================  ===================  ===============================================
``pk``                          ``sk``               what
==============================  ===================  ===============================================
``Q#{queue}#J#{job_id}``        ``JOB``              job record: ``state``, ``payload`` (JSON string),
                                                     ``run_at``, ``owner``, ``heartbeat``,
                                                     ``updated_at``, ``created_at``, index keys
``Q#{queue}#J#{job_id}``        ``DEPS``             ``pending`` (parents it waits for) and
                                                     ``children`` (jobs waiting for it), string sets
``Q#{queue}``                   ``META``             queue flags (``paused``)
``Q#{queue}``                   ``REP#{key}``        repeatable: ``job_def`` (JSON), ``next_run``
``WORKERS``                     ``W#{worker_id}``    worker registry entry, ``until`` + TTL
``LOCK#{key}``                  ``LOCK``             lock: ``token``, ``until`` + TTL
``REGISTRY``                    ``QUEUES``           ``queues``: every queue name (string set)
==============================  ===================  ===============================================

Indexes (all ``KEYS_ONLY``, so heartbeats and payload writes do not copy the payload):

* ``by_state``: ``gsi1pk = "{queue}#{state}"``, ``gsi1sk = created_at`` — ``list_jobs``
  (Query, then ``BatchGetItem`` of the records) and ``count_jobs`` (``Select=COUNT``
  per known state). One partition per queue and state: a queue that takes more than
  ~1,000 writes/s of state changes should be split into several queues.
* ``active`` (sparse: only ``active`` jobs carry its keys): ``act_pk = "ACTIVE#{0..3}"``,
  ``act_sk = heartbeat`` — ``list_stalled`` queries the 4 shards for
  ``heartbeat < older_than``; never a Scan. It also holds the *unsent* marks of jobs
  made ``waiting`` by ``create``/``transition`` with ``unsent``: ``act_pk = "UNSENT#{queue}"``,
  ``act_sk =`` the write's time, until the claim (or any state change) moves or removes
  them — ``list_unsent`` is one Query (``stores/_dynamodb_unsent.py``).
* ``ready`` (sparse; written only with ``ready_shards >= 1``, i.e. by ``DynamoDBBackend``):
  ``rdy_pk = "{queue}#R#{shard}"``, ``rdy_sk = prio_base + ready time`` where
  ``prio_base = priority * 10^11`` is kept on the item. Every write that makes a job
  ``waiting`` sets these keys, the claim and every other state change remove them:
  the index holds exactly the claimable jobs (``transports/dynamodb.py``).

Index reads are eventually consistent; every record found through an index is
re-read with a consistent ``BatchGetItem`` and re-checked, so results are exact
for the records returned (a write of the last few hundred ms may be missing).

Calls and capacity per operation (WCU/RCU = on-demand write/read request units;
a job item is billed on its full size, payload included, in 1 KB write / 4 KB read steps):

* ``create`` one job: 1 ``UpdateItem`` (1 WCU per KB; + 1 WCU on the ``active`` index
  with ``unsent``, and the claim then moves that entry: + 1 WCU); several jobs with no
  dependency between them (a bulk add): ``BatchWriteItem`` puts, 25 per call (1 WCU per KB
  per job; not all or nothing, decision 71); a flow: 1 ``TransactWriteItems``
  (2 WCU per KB per item, ≤ 100 items: jobs plus one dependency item per job that has
  parents or children — any flow of ≤ 50 jobs fits). First write of a queue by this
  process: +1 ``UpdateItem`` on the registry (one for all concurrent first writes).
* ``claim``, ``transition``, ``heartbeat``, ``set_state``, ``update_payload``: 1 conditional
  ``UpdateItem`` each (``ReturnValues=ALL_NEW`` on claim/transition: the payload comes
  back at no extra read). A heartbeat rewrites the whole item: a 40 KB payload costs
  40 WCU per heartbeat, plus 2 WCU on the ``active`` index (its entry moves); a state
  change likewise moves the ``by_state`` entry (2 WCU).
* ``promote`` (delayed -> waiting): 1 conditional ``UpdateItem`` per id, concurrently.
* ``get``: 1 consistent ``GetItem``. ``delete``: 2 ``DeleteItem`` + 1 ``UpdateItem`` per parent.
* ``resolve_dependency``: 1 ``GetItem`` + 1 conditional ``UpdateItem`` per child + 1 ``UpdateItem``
  on the parent's item, + 1 ``DeleteItem`` per dependency item left empty.
* ``list_jobs``: ``Query`` pages + ``BatchGetItem`` per 100; ``count_jobs``: 8 ``Query``
  (``Select=COUNT``, concurrent, one per known state: a state no AsyncMQ version uses is
  not counted); ``list_stalled``: 4 ``Query`` + ``BatchGetItem`` of hits.
* locks, workers, flags, repeatables: 1 small call each.

IAM actions: ``dynamodb:GetItem``, ``PutItem``, ``UpdateItem``, ``DeleteItem``, ``BatchGetItem``,
``BatchWriteItem`` and ``Query`` on the table and on ``table/NAME/index/*`` (``TransactWriteItems`` is authorised
per item, as ``UpdateItem``); ``provision`` also needs ``CreateTable``, ``DescribeTable``,
``DescribeTimeToLive`` and ``UpdateTimeToLive``.
With a customer-managed KMS key: ``kms:Decrypt``, ``kms:GenerateDataKey``.

TTL: ``completed_ttl`` puts ``expires_at`` on jobs in a terminal state (completed,
failed, expired, cancelled); it is cleared again if the job is retried. DynamoDB deletes
expired items "typically within two days": TTL is clean-up only, never a timer — locks
and workers keep their exact expiry in ``until`` and every read checks it.

Payload limit: ``max_payload_bytes`` (default 398,976 = 400,000 minus 1,024 bytes kept for
attributes later writes add) applies to the whole encoded item, measured before any write;
a larger job raises ``PayloadTooLargeError`` and nothing of its call is written.

Numbers are written as DynamoDB ``N`` in plain decimal notation and read back as
``float``; payloads are one JSON string attribute (``core.validation.encode_payload``).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from asyncmq_cloud.aws import AwsClients
from asyncmq_cloud.core import states
from asyncmq_cloud.core.protocols import JobRecord
from asyncmq_cloud.core.validation import validate_queue_name
from asyncmq_cloud.errors import ConfigurationError, PayloadTooLargeError
from asyncmq_cloud.resources import JOBS_TABLE_NAME, jobs_table, provision_table, validate_table_name

if TYPE_CHECKING:
    from asyncmq_cloud.core.protocols import ResourceSpec
from asyncmq_cloud.stores import _dynamodb_codec as codec
from asyncmq_cloud.stores._dynamodb_deps import DependencyMixin
from asyncmq_cloud.stores._dynamodb_meta import MetaMixin
from asyncmq_cloud.stores._dynamodb_queries import QueryMixin
from asyncmq_cloud.stores._dynamodb_unsent import UnsentMixin, mark_unsent, mark_unsent_clauses, mark_unsent_item
from asyncmq_cloud.stores._dynamodb_writes import WriteMixin

#: Default ``max_payload_bytes``: the item limit minus room for later attributes.
DEFAULT_MAX_PAYLOAD_BYTES = codec.DYNAMODB_MAX_ITEM_BYTES - codec.ITEM_HEADROOM_BYTES


class DynamoDBStateStore(QueryMixin, UnsentMixin, DependencyMixin, MetaMixin, WriteMixin):
    """Job records and queue metadata in one DynamoDB table (see the module docstring).

    Args:
        table_name: the jobs table (3 to 255 of ``[A-Za-z0-9_.-]``).
        endpoint_url: / region_name: passed to a private :class:`AwsClients`.
        clients: a shared, caller-owned :class:`AwsClients` (not closed by ``close()``).
        create_missing: ``start()`` runs :meth:`provision` (development only).
        completed_ttl: seconds after which terminal jobs may be deleted by TTL.
        max_payload_bytes: largest encoded job item accepted (≤ 400 KB item limit).
        ready_shards: 0 (default) = no ready index; ``n`` = every ``waiting`` job carries
            the ``ready`` index keys over ``n`` shards per queue, so that the table
            itself is the queue (``DynamoDBBackend``; see ``transports/dynamodb.py``).
    """

    def __init__(
        self,
        table_name: str = JOBS_TABLE_NAME,
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        clients: AwsClients | None = None,
        create_missing: bool = False,
        completed_ttl: float | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        ready_shards: int = 0,
    ) -> None:
        self.table_name = validate_table_name(table_name)
        if not 0 <= ready_shards <= codec.MAX_READY_SHARDS:
            raise ConfigurationError(f"ready_shards must be in 0..{codec.MAX_READY_SHARDS}, not {ready_shards}")
        self.ready_shards = ready_shards
        if not 0 < max_payload_bytes <= DEFAULT_MAX_PAYLOAD_BYTES:
            raise ConfigurationError(
                f"max_payload_bytes must be in 1..{DEFAULT_MAX_PAYLOAD_BYTES} (DynamoDB's 400 KB item "
                f"limit minus {codec.ITEM_HEADROOM_BYTES} bytes headroom), not {max_payload_bytes}"
            )
        if completed_ttl is not None and completed_ttl <= 0:
            raise ConfigurationError(f"completed_ttl must be > 0 seconds or None, not {completed_ttl}")
        super().__init__()
        self._use_clients(clients, endpoint_url=endpoint_url, region_name=region_name, what="store")
        self.max_payload_bytes = max_payload_bytes
        self.completed_ttl = completed_ttl
        self.create_missing = create_missing
        self.spec = jobs_table(self.table_name)
        self._aws_resource = f"DynamoDB table {self.table_name!r}"
        self._known_queues: set[str] = set()
        self.claim_lost_at: dict[str, float] = {}  # QueryMixin.note_claim
        self._claimed_here: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._registering: dict[str, asyncio.Future[None]] = {}

    # -- lifecycle -------------------------------------------------------------------
    async def _open(self, stack: AsyncExitStack) -> None:
        """Start the clients; with ``create_missing`` create the table."""
        await super()._open(stack)
        if self.create_missing:
            await self.provision()

    async def provision(self) -> None:
        await provision_table(await self._client(), self.spec)

    def resources(self, queues: Sequence[str]) -> list[ResourceSpec]:
        """The jobs table (the same for every queue)."""
        return [self.spec]

    # -- job records -----------------------------------------------------------------
    async def create(
        self,
        records: Sequence[JobRecord],
        deps: Mapping[str, Collection[str]] | None = None,
        *,
        unsent: bool = False,
        atomic: bool = True,
    ) -> None:
        unique = list({(r.queue, r.id): r for r in records}.values())
        if not unique:
            return
        now = time.time()
        # Each record of a call gets its own created time, in order, so list_jobs and the
        # ready index return them in the order given (the index sort keys must differ).
        writes, items = [], []
        total = 0
        for offset, record in enumerate(unique):
            validate_queue_name(record.queue)
            created = round(now, 6) + offset * 1e-6
            expires = self._expires(record.state, now)
            item = codec.job_item(record, created=created, now=created, expires=expires, ready_shards=self.ready_shards)
            size = codec.item_size(item)
            if size > self.max_payload_bytes:
                raise PayloadTooLargeError(
                    f"job {record.id!r} encodes to a {size}-byte DynamoDB item; {self._aws_resource} accepts "
                    f"{self.max_payload_bytes} (DynamoDB's limit is 400 KB per item): store large data "
                    "elsewhere (S3) and pass a reference",
                    size=size,
                    limit=self.max_payload_bytes,
                )
            total += size
            write = codec.job_upsert(
                record, created=created, now=created, expires=expires, ready_shards=self.ready_shards
            )
            marked = unsent and record.state == states.WAITING
            writes.append(mark_unsent(write, record.queue, created) if marked else write)
            items.append(mark_unsent_item(item, record.queue, created) if marked else item)
        edges = self._flow_edges(unique, deps or {})
        dep_updates = codec.deps_updates(unique[0].queue, edges) if edges else []
        parents = {parent for ps in edges.values() for parent in ps}
        if parents:
            in_flow = {r.id for r in unique}
            writes = [
                codec.flag_has_children(w) if w["Key"] == codec.job_key(r.queue, r.id) and r.id in parents else w
                for w, r in zip(writes, unique, strict=True)
            ]
            await self._flag_parents(unique[0].queue, parents - in_flow)
        await self._register_queues({r.queue for r in unique})
        if not atomic and len(writes) > 1 and not dep_updates and not parents:
            # Jobs with no dependency between them (a bulk add): BatchWriteItem, half the write
            # units of a transaction; not all or nothing (decision 71).
            await self._batch_put(items)
            return
        if len(writes) == 1 and not dep_updates:
            only = writes[0]
            await self._update(only.pop("Key"), only.pop("UpdateExpression"), **only)
            return
        total += sum(codec.update_size(u) for u in dep_updates)
        await self._transact(writes + dep_updates, total)

    @staticmethod
    def _flow_edges(records: Sequence[JobRecord], deps: Mapping[str, Collection[str]]) -> dict[str, set[str]]:
        ids = {r.id for r in records}
        missing = sorted(set(deps) - ids)
        if missing:
            raise ConfigurationError(f"deps names jobs that are not among the records: {missing[:5]}")
        if len({r.queue for r in records}) > 1 and deps:
            raise ConfigurationError("a flow with dependencies must keep all its jobs in one queue")
        return {child: set(parents) for child, parents in deps.items() if parents}

    async def get(self, queue: str, job_id: str) -> JobRecord | None:
        item = await self._get_item(codec.job_key(queue, job_id))
        return codec.record_from_item(item) if item else None

    async def claim(
        self, queue: str, job_id: str, token: str, now: float, *, stale_before: float | None = None
    ) -> JobRecord | None:
        condition, values = codec.claim_condition(take_over=stale_before is not None)
        values[":claimed"] = {"S": states.CLAIMED}
        values[":token"] = {"S": token}
        values[":now"] = codec.num(now)
        values[":g1pk"] = {"S": codec.state_partition(queue, states.CLAIMED)}
        values[":apk"] = {"S": codec.active_shard(queue, job_id)}
        if stale_before is not None:
            # Take over an active job whose holder stopped heartbeating (lease expired).
            values[":stale"] = codec.num(stale_before)
        removes = "#run_at, #exp" + (", #rpk, #rsk" if self.ready_shards else "")
        expression = "SET #state = :claimed, #owner = :token, #hb = :now, #upd = :now, #g1pk = :g1pk, "
        record = await self._update_job(
            queue, job_id, f"{expression}#apk = :apk, #ask = :now REMOVE {removes}", condition, values
        )
        self.note_claim(queue, job_id, won=record is not None)
        return record

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
        if expect_states is not None and not expect_states:
            return None
        if payload is not None and not await self._fits(
            queue, job_id, to_state, payload, (expect_states, expect_owner)
        ):
            return None
        now = time.time()
        sets, removes, values = self._state_change(queue, job_id, to_state, now, heartbeat=None)
        removes += ["#owner", "#hb"]
        if unsent and to_state == states.WAITING:
            mark_unsent_clauses(sets, removes, values, queue)
        if payload is not None:
            sets.append("#payload = :payload")
            values[":payload"] = {"S": codec.encode_payload(payload)}
        if run_at is None:
            removes.append("#run_at")
        else:
            sets.append("#run_at = :run_at")
            values[":run_at"] = codec.num(run_at)
        condition, condition_values = codec.transition_condition(expect_states, expect_owner)
        values.update(condition_values)
        expression = "SET " + ", ".join(sets) + " REMOVE " + ", ".join(removes)
        return await self._update_job(queue, job_id, expression, condition, values)

    async def promote(self, queue: str, job_ids: Sequence[str]) -> list[str]:
        """``delayed -> waiting``: one conditional ``UpdateItem`` per id, sent concurrently.

        DynamoDB has no batch write whose items may fail their conditions one by one
        (``TransactWriteItems`` is all or nothing, ``BatchWriteItem`` takes no
        conditions), so concurrency stands in for the single round trip.
        """
        ids = list(dict.fromkeys(job_ids))
        limit = asyncio.Semaphore(codec.PROMOTE_CONCURRENCY)

        async def move(job_id: str) -> bool:
            sets, removes, values = self._state_change(queue, job_id, states.WAITING, time.time(), heartbeat=None)
            promotable, promotable_values = codec.state_in(states.PROMOTABLE, "from")
            values.update(promotable_values)
            expression = "SET " + ", ".join(sets) + " REMOVE " + ", ".join([*removes, "#owner", "#hb", "#run_at"])
            async with limit:
                moved = await self._update_job(
                    queue, job_id, expression, f"attribute_exists(#pk) AND {promotable}", values
                )
            return moved is not None

        results = await asyncio.gather(*(move(job_id) for job_id in ids))
        return [job_id for job_id, moved in zip(ids, results, strict=True) if moved]

    async def _fits(
        self,
        queue: str,
        job_id: str,
        state: str,
        payload: Mapping[str, Any],
        expect: tuple[Collection[str] | None, str | None] = (None, None),
    ) -> bool:
        """False if the write's conditions fail; raises ``PayloadTooLargeError`` if ``payload`` is too big.

        As in the memory store, a missing job or a failed ``expect`` (states, owner)
        is answered before the size (one extra ``GetItem``, on the error path only).
        """
        size = codec.estimated_job_size(queue, job_id, state, payload)
        if size <= self.max_payload_bytes:
            return True
        if not states.transition_allowed(await self.get(queue, job_id), *expect):
            return False
        raise PayloadTooLargeError(
            f"job {job_id!r} would encode to a {size}-byte DynamoDB item; {self._aws_resource} accepts "
            f"{self.max_payload_bytes}",
            size=size,
            limit=self.max_payload_bytes,
        )

    async def update_payload(self, queue: str, job_id: str, payload: dict[str, Any]) -> bool:
        if not await self._fits(queue, job_id, codec.WAITING_CHILDREN, payload):
            return False
        values = {":payload": {"S": codec.encode_payload(payload)}, ":now": codec.num(time.time())}
        updated = await self._update_job(
            queue, job_id, "SET #payload = :payload, #upd = :now", "attribute_exists(#pk)", values
        )
        return updated is not None

    async def set_state(self, queue: str, job_id: str, state: str) -> bool:
        # An active job found by list_stalled by its heartbeat, else by this write's time.
        sets, removes, values = self._state_change(
            queue, job_id, state, time.time(), heartbeat="if_not_exists(#hb, :now)"
        )
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        return await self._update_job(queue, job_id, expression, "attribute_exists(#pk)", values) is not None

    async def heartbeat(self, queue: str, job_id: str, now: float, token: str | None = None) -> bool:
        # states.heartbeat_allowed: a claimed job, held by ``token`` if one is given.
        condition, values = codec.transition_condition({states.CLAIMED}, token)
        values[":now"] = codec.num(now)
        values[":apk"] = {"S": codec.active_shard(queue, job_id)}
        updated = await self._update_job(queue, job_id, "SET #hb = :now, #apk = :apk, #ask = :now", condition, values)
        return updated is not None


__all__ = ["DEFAULT_MAX_PAYLOAD_BYTES", "DynamoDBStateStore"]
