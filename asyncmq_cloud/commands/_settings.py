"""The backend every command runs against: ``settings.backend`` of AsyncMQ's settings."""

from __future__ import annotations

import os

from asyncmq_cloud.core.lifecycle import CloudBackend

#: What a command says when ``settings.backend`` is not an asyncmq_cloud backend.
NOT_CLOUD = "asyncmq-cloud commands need an asyncmq_cloud backend (set ASYNCMQ_SETTINGS_MODULE or --settings)"


def settings_backend(settings_path: str | None) -> object:
    """``settings.backend`` of the settings class ``settings_path`` (else ``$ASYNCMQ_SETTINGS_MODULE``).

    Args:
        settings_path: ``module.Class`` of the settings; it overrides ``ASYNCMQ_SETTINGS_MODULE``.

    Returns:
        The backend exactly as AsyncMQ's workers get it (any type; see :func:`load_backend`).
    """
    if settings_path:
        os.environ["ASYNCMQ_SETTINGS_MODULE"] = settings_path
    import asyncmq

    backend: object = asyncmq.monkay.settings.backend
    return backend


def load_backend(settings_path: str | None) -> CloudBackend:
    """The settings' backend; :class:`SystemExit` with the reason when it is not asyncmq_cloud's.

    Args:
        settings_path: ``module.Class`` of the settings, or ``None`` for ``$ASYNCMQ_SETTINGS_MODULE``.
    """
    backend = settings_backend(settings_path)
    if not isinstance(backend, CloudBackend):
        raise SystemExit(f"settings.backend is a {type(backend).__name__}; {NOT_CLOUD}")
    return backend
