"""Every AWS call reported to :mod:`asyncmq_cloud.observe`, from aiobotocore's event hooks.

:func:`instrument` registers three handlers on a client: ``before-call`` notes the
time, ``after-call`` (an answer, error answers included) and ``after-call-error``
(no answer: connection errors, timeouts) report the call with its outcome. botocore's
own retries happen inside one call: a call throttled once and then answered is ``ok``.
The handlers return at once when no observer listens.
"""

from __future__ import annotations

import time
from typing import Any

from asyncmq_cloud import observe
from asyncmq_cloud._aws_codes import TRANSIENT_CANCEL_REASONS, TRANSIENT_CODES

#: Error codes that mean "slow down" (a subset of the transient codes).
THROTTLING_CODES = frozenset(
    code
    for code in TRANSIENT_CODES
    if "throttl" in code.lower() or "Limit" in code or code in ("SlowDown", "OverLimit")
) | {"ProvisionedThroughputExceededException", "TooManyRequestsException", "ThrottlingError"}
#: Expected answers of conditional writes: outcomes the code asked about, not failures.
EXPECTED_CODES = frozenset({"ConditionalCheckFailedException"})
_BEGAN, _OPERATION = "asyncmq_cloud_began", "asyncmq_cloud_operation"


def classify_code(code: str | None, reasons: list[str] | None = None) -> str:
    """The outcome (one of :data:`observe.CALL_OUTCOMES`) of an answer with error ``code``."""
    if not code or code in EXPECTED_CODES:
        return "ok"
    if code == "TransactionCanceledException":
        reasons = [r for r in reasons or [] if r and r != "None"]
        if any(r in THROTTLING_CODES for r in reasons):
            return "throttled"
        return "transient" if any(r in TRANSIENT_CANCEL_REASONS for r in reasons) else "ok"
    if code in THROTTLING_CODES:
        return "throttled"
    return "transient" if code in TRANSIENT_CODES else "permanent"


def instrument(client: Any, service: str) -> None:
    """Report every call ``client`` makes as ``service`` (``dynamodb``, ``sqs``, ...)."""
    service_id = client.meta.service_model.service_id.hyphenize()

    def before(model: Any, context: dict[str, Any], **_: Any) -> None:
        if observe.active():
            context[_BEGAN], context[_OPERATION] = time.monotonic(), model.name

    def after(http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        began = context.pop(_BEGAN, None)
        if began is None:
            return
        error = (parsed.get("Error") or {}) if http_response.status_code >= 300 else {}
        reasons = [str(r.get("Code")) for r in parsed.get("CancellationReasons") or []]
        outcome = classify_code(error.get("Code"), reasons)
        observe.backend_call(service, model.name, outcome, time.monotonic() - began)

    def after_error(exception: BaseException, context: dict[str, Any], **_: Any) -> None:
        began = context.pop(_BEGAN, None)
        if began is not None:
            operation = str(context.get(_OPERATION, "unknown"))
            observe.backend_call(service, operation, "transient", time.monotonic() - began)

    events = client.meta.events
    events.register(f"before-call.{service_id}", before)
    events.register(f"after-call.{service_id}", after)
    events.register(f"after-call-error.{service_id}", after_error)
