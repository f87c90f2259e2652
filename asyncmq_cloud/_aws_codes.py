"""The AWS error codes :func:`asyncmq_cloud.aws.translate_error` sorts into the error hierarchy."""

from __future__ import annotations

#: Codes worth repeating: throttling, server-side failures and write conflicts.
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "TransactionInProgressException",
        "TransactionConflictException",
        "ReplicatedWriteConflictException",
        "SlowDown",
        "PriorRequestNotComplete",
        "BandwidthLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalServerError",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "OverLimit",
        "KmsThrottled",
        "KMSThrottlingException",
    }
)
#: Codes that mean "these credentials may not do this" (besides ``*AccessDenied*``).
ACCESS_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "MissingAuthenticationToken",
        "IncompleteSignature",
        "AuthFailure",
        "UnauthorizedOperation",
    }
)
#: Codes for a queue/table that does not exist.
MISSING_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "TableNotFoundException",
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
        "NoSuchBucket",
    }
)
#: ``TransactionCanceledException`` reasons that a retry may clear.
TRANSIENT_CANCEL_REASONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)
CONDITIONAL_FAILED = "ConditionalCheckFailedException"


__all__ = ["ACCESS_CODES", "CONDITIONAL_FAILED", "MISSING_CODES", "TRANSIENT_CANCEL_REASONS", "TRANSIENT_CODES"]
