"""The operator commands behind ``asyncmq-cloud`` (``cli.py`` only parses arguments).

* :mod:`~asyncmq_cloud.commands.scanner` — ``scanner run``: the standalone delayed-job scanner;
* :mod:`~asyncmq_cloud.commands.provision` — ``provision``: the plan (``--dry-run``) and the creation;
* :mod:`~asyncmq_cloud.commands.health` — ``health``: a probe of the backend's connectivity;
* :mod:`~asyncmq_cloud.commands.doctor` — ``doctor``: what is wrong and how to fix it;
* :mod:`~asyncmq_cloud.commands.dashboard` — ``dashboard``: AsyncMQ's dashboard on the backend;
* :mod:`~asyncmq_cloud.commands.demo` — ``demo``: a sample workload on an embedded AWS endpoint.

Every command takes the backend from AsyncMQ's settings (:func:`~._settings.load_backend`).
"""
