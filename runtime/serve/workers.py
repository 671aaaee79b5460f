"""``holdfast serve --workers N``: uvicorn's worker supervisor, with metrics merged over workers.

uvicorn's workers are spawned interpreters that cannot be handed a Python object: the
configuration goes to them in the environment (:data:`runtime.serve.app.CONFIG_ENV`), and each
builds its app with :func:`runtime.serve.app.app_from_env`.

Metrics: before the first worker starts, a fresh directory (``holdfast-metrics-*`` in the
system's temp dir, removed when the server stops) is set as ``PROMETHEUS_MULTIPROC_DIR``, so
every worker imports prometheus-client in its multiprocess mode and ``/metrics`` merges them
all (:mod:`runtime.serve.metrics`). A worker that exits cleanly drops its live gauges itself; one
that dies (killed, crashed) is dropped by the supervisor when it replaces it (prometheus-client's
``mark_process_dead``, its documented duty of the process manager).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from typing import Any

from uvicorn import Config as UvicornConfig
from uvicorn.supervisors import Multiprocess

from runtime.config import Config
from runtime.serve.app import CONFIG_ENV, config_to_env
from runtime.serve.metrics import MULTIPROC_ENV


class MetricsMultiprocess(Multiprocess):
    """uvicorn's supervisor that also drops a dead worker's live gauges from the merged metrics."""

    def __init__(self, config: UvicornConfig, sockets: list[socket.socket], metrics_dir: str) -> None:
        super().__init__(config, sockets)
        self.metrics_dir = metrics_dir

    def keep_subprocess_alive(self) -> None:
        """Replace dead workers (uvicorn), then mark each replaced one dead for the metrics."""
        before = [process.pid for process in self.processes]
        super().keep_subprocess_alive()
        alive = {process.pid for process in self.processes}
        from prometheus_client.multiprocess import mark_process_dead

        for pid in before:
            if pid is not None and pid not in alive:
                mark_process_dead(pid, self.metrics_dir)


def run_workers(config: Config, bind: str, sock: socket.socket, count: int, **uvicorn_options: Any) -> None:
    """Serve the app on ``sock`` with ``count`` worker processes until SIGTERM/SIGINT.

    ``bind`` is the address the workers believe they serve (loopback: no key needed while none
    exists); ``uvicorn_options`` are passed to ``uvicorn.Config``. The environment variables set
    for the workers are restored afterwards and the metrics directory is removed."""
    metrics_dir = tempfile.mkdtemp(prefix="holdfast-metrics-")
    saved = {name: os.environ.get(name) for name in (CONFIG_ENV, MULTIPROC_ENV)}
    os.environ[CONFIG_ENV] = config_to_env(config, bind)
    os.environ[MULTIPROC_ENV] = metrics_dir
    try:
        worker_config = UvicornConfig("runtime.serve.app:app_from_env", factory=True, workers=count, **uvicorn_options)
        MetricsMultiprocess(worker_config, [sock], metrics_dir).run()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(metrics_dir, ignore_errors=True)
