"""``asyncmq-cloud dlq list``: the error shown for a failed job is its exception's line."""

from __future__ import annotations

from asyncmq_cloud.commands.dlq.jobs import describe, error_line

PLAIN = """Traceback (most recent call last):
  File "/app/tasks.py", line 38, in fail_always
    raise RuntimeError(f"{key} always fails")
RuntimeError: dlq-0 always fails
"""
GROUPED = """  + Exception Group Traceback (most recent call last):
  |   File "/venv/asyncmq/workers.py", line 424, in handle_job
  |     async with anyio.create_task_group() as heartbeat_tg:
  | ExceptionGroup: unhandled errors in a TaskGroup (1 sub-exception)
  +-+---------------- 1 ----------------
    | Traceback (most recent call last):
    |   File "/app/tasks.py", line 38, in fail_always
    |     raise RuntimeError(f"{key} always fails")
    | RuntimeError: dlq-0 always fails
    +------------------------------------
"""


def test_the_exception_line_of_a_plain_or_grouped_traceback() -> None:
    assert error_line(PLAIN) == "RuntimeError: dlq-0 always fails"
    assert error_line(GROUPED) == "RuntimeError: dlq-0 always fails"
    assert error_line("boom") == "boom"
    assert error_line("") == ""
    assert error_line("app.errors.PaymentDeclined: card 42\n") == "app.errors.PaymentDeclined: card 42"


def test_a_failed_job_line() -> None:
    job = {"id": "j1", "task": "app.send", "retries": 3, "failed_at": 86400.0, "last_error": GROUPED}
    assert describe(job) == "j1  app.send  attempts=3  failed=1970-01-02T00:00:00Z  RuntimeError: dlq-0 always fails"
