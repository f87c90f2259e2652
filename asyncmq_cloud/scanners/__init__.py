"""Compatibility paths: the ``DelayStore`` adapters moved to :mod:`asyncmq_cloud.delays` (0.1.0 had them here).

``from asyncmq_cloud.scanners.memory import MemoryDelayStore`` (and ``.redis``/``.dynamodb``) keep
working and warn once with :class:`DeprecationWarning`; import from ``asyncmq_cloud.delays`` instead.
"""

from __future__ import annotations

import warnings

warnings.warn(
    "asyncmq_cloud.scanners is now asyncmq_cloud.delays (the DelayStore adapters); update the import",
    DeprecationWarning,
    stacklevel=2,
)
