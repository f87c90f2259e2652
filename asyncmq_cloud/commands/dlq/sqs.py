"""``asyncmq-cloud dlq ... --source broker`` on ``SQSBackend``: the queue's SQS dead-letter queue.

What lands there: references SQS moved after ``max_receive_count`` receives (repeated
crashes), and poison messages the transport moved (the reason in ``asyncmq-error``).

* ``list`` / ``show``: messages are received with a short visibility timeout and made
  visible again at once (``ChangeMessageVisibilityBatch`` to 0): a list hides nothing.
* ``redrive``: with no ``--limit``, SQS's own ``StartMessageMoveTask`` moves every message
  back to the queue on the server (``--rate``: ``MaxNumberOfMessagesPerSecond``), and the
  command follows ``ListMessageMoveTasks``. A task already running (a redrive stopped
  earlier: stopping the command does not stop the task) is followed, not started twice.
  Where the endpoint has no move task (moto, MiniStack), or with ``--limit``, a bounded
  loop receives a batch, sends it to the queue, then deletes it from the DLQ:
  at-least-once, so a stop between a batch's send and its delete leaves those messages (at
  most 10) in both; a duplicate reference is dropped by the claim. On FIFO queues the
  loop's sends carry the DLQ message id as ``MessageDeduplicationId``: a rerun within 5
  minutes sends no duplicate.
* ``purge``: receive and delete, up to ``--limit``.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from asyncmq_cloud.aws import error_code
from asyncmq_cloud.commands.dlq._run import Run
from asyncmq_cloud.errors import PermanentError
from asyncmq_cloud.transports._envelope import decode_envelope
from asyncmq_cloud.transports._sqs_calls import batch_call
from asyncmq_cloud.transports._sqs_messages import COUNT_ATTRIBUTE, ERROR_ATTRIBUTE, SOURCE_ATTRIBUTE
from asyncmq_cloud.transports.sqs import SQSTransport

#: Visibility (s) of a message a ``list`` or ``show`` received; it is made visible again at once.
PEEK_VISIBILITY = 30
#: Visibility (s) of a message the redrive loop moves: time to send it and delete it. A run
#: stopped mid-batch leaves that batch invisible this long; the next run waits for it.
MOVE_VISIBILITY = 30
#: Error codes that mean "this endpoint has no message move task": the loop takes over.
NO_MOVE_TASK = frozenset({"InvalidAction", "UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation"})
FINISHED = ("COMPLETED", "FAILED", "CANCELLED")
#: Most messages per second a move task takes (``MaxNumberOfMessagesPerSecond``).
MAX_MOVE_RATE = 500
#: Attributes the transport adds to a poison message; a redriven message goes back without them.
POISON_ATTRIBUTES = frozenset({ERROR_ATTRIBUTE, SOURCE_ATTRIBUTE, COUNT_ATTRIBUTE})


@dataclass
class DeadLetters:
    """The SQS client, the dead-letter queue and the queue its messages go back to."""

    client: Any
    queue: str
    dlq_url: str
    source_url: str
    fifo: bool

    @classmethod
    async def of(cls, transport: SQSTransport, queue: str) -> DeadLetters:
        client = await transport.clients.sqs()
        spec = transport.spec(queue)
        dlq_url = (await client.get_queue_url(QueueName=spec.dlq_name))["QueueUrl"]
        source_url = (await client.get_queue_url(QueueName=spec.name))["QueueUrl"]
        return cls(client, queue, dlq_url, source_url, spec.fifo)

    async def arn(self, url: str) -> str:
        reply = await self.client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(reply["Attributes"]["QueueArn"])

    async def depth(self, *, in_flight_only: bool = False) -> int:
        """Messages in the DLQ (visible and in flight), or only those in flight."""
        names = ["ApproximateNumberOfMessagesNotVisible"]
        if not in_flight_only:
            names.append("ApproximateNumberOfMessages")
        reply = await self.client.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=names)
        return sum(int(reply["Attributes"].get(name, 0)) for name in names)

    async def receive(self, count: int, visibility: int) -> list[dict[str, Any]]:
        reply = await self.client.receive_message(
            QueueUrl=self.dlq_url, MaxNumberOfMessages=max(1, min(10, count)), WaitTimeSeconds=1,
            VisibilityTimeout=visibility, MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"],
        )  # fmt: skip
        return list(reply.get("Messages", []))

    async def release(self, messages: list[dict[str, Any]]) -> None:
        """Make ``messages`` visible again now."""
        for start in range(0, len(messages), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(messages[start : start + 10])
            ]
            await self.client.change_message_visibility_batch(QueueUrl=self.dlq_url, Entries=entries)

    async def delete(self, messages: list[dict[str, Any]]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        if entries:
            await self.client.delete_message_batch(QueueUrl=self.dlq_url, Entries=entries)


def describe(message: dict[str, Any], queue: str) -> str:
    """One line: message id, the job it refers to, receives, when it was first sent, the reason."""
    attributes = message.get("Attributes", {})
    try:
        job = decode_envelope(message.get("Body", ""), queue)
    except Exception:  # a poison message: not a job reference
        job = "-"
    sent = attributes.get("SentTimestamp")
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(sent) / 1000)) if sent else "-"
    reason = message.get("MessageAttributes", {}).get(ERROR_ATTRIBUTE, {}).get("StringValue", "")
    receives = attributes.get("ApproximateReceiveCount", "?")
    return f"{message['MessageId']}  job={job}  receives={receives}  sent={when}  {reason[:120]}"


async def peek(letters: DeadLetters, limit: int | None, run: Run) -> list[dict[str, Any]]:
    """Up to ``limit`` messages of the DLQ, each once, all made visible again before returning."""
    seen: dict[str, dict[str, Any]] = {}
    try:
        while not run.stopped and (limit is None or len(seen) < limit):
            batch = await letters.receive(10 if limit is None else limit - len(seen), PEEK_VISIBILITY)
            fresh = [m for m in batch if m["MessageId"] not in seen]
            if not fresh:
                break
            seen.update((m["MessageId"], m) for m in fresh)
    finally:
        await letters.release(list(seen.values()))
    return list(seen.values())


async def list_messages(letters: DeadLetters, limit: int | None, run: Run) -> None:
    for message in await peek(letters, limit, run):
        print(describe(message, letters.queue), flush=True)
        run.done("listed")


async def show_message(letters: DeadLetters, message_id: str, run: Run) -> dict[str, Any]:
    """The message ``message_id`` (body and attributes); :class:`LookupError` when it is not there."""
    for message in await peek(letters, None, run):
        if message["MessageId"] == message_id:
            shown = {k: v for k, v in message.items() if k != "ReceiptHandle"}
            print(json.dumps(shown, indent=2, sort_keys=True), flush=True)
            return message
    raise LookupError(f"no message {message_id!r} in the dead-letter queue of {letters.queue!r}")


async def redrive(letters: DeadLetters, limit: int | None, run: Run, method: str) -> None:
    """Move the dead letters back to the queue: the move task when it can, else the loop."""
    if limit is None and method != "loop":
        dlq_arn = await letters.arn(letters.dlq_url)
        try:
            task = await _latest_task(letters, dlq_arn)
        except Exception as exc:  # only before a task exists may the loop take over
            if method == "move-task" or not _no_move_task(exc):
                raise
            print(f"redrive: the endpoint has no message move task ({error_code(exc)}); moving batch by batch",
                  file=run.out, flush=True)  # fmt: skip
        else:
            await _move_task(letters, run, dlq_arn, task)
            return
    await _loop(letters, limit, run, "redrive")


def _no_move_task(exc: BaseException) -> bool:
    """The endpoint does not implement message move tasks (moto answers 500, MiniStack InvalidAction)."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") if isinstance(exc, ClientError) else None
    return error_code(exc) in NO_MOVE_TASK or status in (500, 501)


async def _latest_task(letters: DeadLetters, dlq_arn: str) -> dict[str, Any] | None:
    reply = await letters.client.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=1)
    results = reply.get("Results") or []
    return dict(results[0]) if results else None


async def _move_task(letters: DeadLetters, run: Run, dlq_arn: str, task: dict[str, Any] | None) -> None:
    if task is not None and task.get("Status") in ("RUNNING", "CANCELLING"):
        print(f"redrive: a move task started earlier is {task['Status'].lower()}; following it",
              file=run.out, flush=True)  # fmt: skip
    else:
        run.total = await letters.depth()
        if run.total == 0:
            return
        options: dict[str, Any] = {"SourceArn": dlq_arn, "DestinationArn": await letters.arn(letters.source_url)}
        if run.rate > 0:  # SQS takes 1 .. 500 per second
            options["MaxNumberOfMessagesPerSecond"] = min(MAX_MOVE_RATE, max(1, round(run.rate)))
        await letters.client.start_message_move_task(**options)
    moved = 0
    while True:
        task = await _latest_task(letters, dlq_arn) or {}
        moved = int(task.get("ApproximateNumberOfMessagesMoved") or 0)
        if task.get("Status") in FINISHED:
            break
        if run.stopped:  # the task goes on without us: a rerun follows it
            print("redrive: stopped following; the move task continues on SQS", file=run.out, flush=True)
            break
        run.counts["redriven"] = moved
        run.progress()
        await asyncio.sleep(1.0)
    run.counts["redriven"] = moved
    if task.get("Status") == "FAILED":
        reason = task.get("FailureReason", "no reason given")
        raise PermanentError(f"the SQS message move task of {letters.queue!r} failed: {reason}")


async def purge(letters: DeadLetters, limit: int | None, run: Run) -> None:
    await _loop(letters, limit, run, "purge")


async def _loop(letters: DeadLetters, limit: int | None, run: Run, action: str) -> None:
    """Receive a batch, send it back (redrive) or not (purge), delete it; until empty, stopped or ``limit``."""
    handled = 0
    # At most what was there at the start: a message that comes back meanwhile (a poison message
    # dead-lettered again, a job still crashing its workers) waits for the next run.
    budget = await letters.depth() if limit is None else limit
    run.total = budget
    waited_until = time.monotonic() + MOVE_VISIBILITY + 5
    while not run.stopped and handled < budget:
        batch = await letters.receive(budget - handled, MOVE_VISIBILITY)
        if not batch:
            if not await _in_flight(letters, run, waited_until):
                break
            continue
        await run.pace(len(batch))
        moved = await _send_back(letters, batch) if action == "redrive" else batch
        await letters.delete(moved)
        handled += len(batch)
        run.done("redriven" if action == "redrive" else "purged", len(moved))
        if len(moved) < len(batch):
            run.done("failed to send (left in the dead-letter queue)", len(batch) - len(moved))


async def _in_flight(letters: DeadLetters, run: Run, until: float) -> bool:
    """Whether messages held by a stopped run are still invisible in the DLQ (then wait a second for them)."""
    held = await letters.depth(in_flight_only=True)
    if not held or time.monotonic() > until:
        return False
    print(f"{run.action}: {held} message(s) in flight in the dead-letter queue (a stopped run's batch); "
          f"waiting for them to be visible again", file=run.out, flush=True)  # fmt: skip
    await asyncio.sleep(1.0)
    return True


async def _send_back(letters: DeadLetters, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send ``batch`` to the queue; the messages that were sent (the others stay in the DLQ)."""
    entries = []
    for message in batch:
        entry: dict[str, Any] = {"MessageBody": message["Body"]}
        attributes = {k: v for k, v in message.get("MessageAttributes", {}).items() if k not in POISON_ATTRIBUTES}
        if attributes:
            entry["MessageAttributes"] = attributes
        group = message.get("Attributes", {}).get("MessageGroupId")
        if group or letters.fifo:  # a fair queue's tenant, a FIFO queue's ordering group
            entry["MessageGroupId"] = group or letters.queue
        if letters.fifo:
            entry["MessageDeduplicationId"] = message["MessageId"]
        entries.append(entry)
    # The transport's batch call: entries SQS failed without sender fault are sent again.
    results = await batch_call(letters.client.send_message_batch, letters.source_url, entries, "SendMessageBatch")
    first = results[0] if results else None
    if first is not None and first.__cause__ is not None and all(r is first for r in results):
        raise first  # the whole call failed (one error, from the SDK's, for every entry): nothing was sent
    return [message for message, result in zip(batch, results, strict=True) if result is None]
