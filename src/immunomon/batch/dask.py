"""Running batch jobs on a Dask distributed cluster (``pip install immunomon[dask]``).

The coordinator sends each worker a small job (a path and settings); the
worker reads the file from the shared file system, writes the sample's folder
and returns a small dict. A worker that dies surfaces here as a ``died``
outcome, so the coordinator counts the attempt and decides whether to try
again; for a ``LocalCluster`` the scheduler's own retries are turned off so
that every death is counted once, by us.
"""

from __future__ import annotations

import logging
import traceback

from .pool import Outcome
from .registry import BatchError


#: how long a remote scheduler is waited for before the batch is refused
CONNECT_TIMEOUT = "20s"


def _import():
    try:
        import dask
        import distributed
    except ImportError:
        raise BatchError("Dask is not installed: `pip install immunomon[dask]` (or "
                         "`pip install dask distributed`) to use --scheduler or --cluster") \
            from None
    return dask, distributed


def parse_cluster(spec: str) -> int:
    """'local:4' -> 4."""
    kind, _, n = str(spec).partition(":")
    if kind != "local" or not n.isdigit() or int(n) < 1:
        raise BatchError(f"--cluster {spec!r}: give local:N with N worker processes, e.g. "
                         "local:4 (for a remote cluster use --scheduler tcp://HOST:PORT)")
    return int(n)


class DaskExecutor:
    """Submit jobs to a Dask cluster: an existing one (``address``) or a
    ``LocalCluster`` of ``local_workers`` single-threaded processes on loopback."""

    def __init__(self, address: str | None = None, local_workers: int | None = None):
        dask, distributed = _import()
        self._futures: dict = {}
        self.cluster = None
        try:
            if local_workers:
                with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                    try:
                        self.cluster = distributed.LocalCluster(
                            n_workers=local_workers, threads_per_worker=1, processes=True,
                            host="127.0.0.1", dashboard_address=None,
                            silence_logs=logging.ERROR)
                    except RuntimeError as exc:     # its worker processes did not start
                        from .pool import START_HINT, WorkerStartError
                        raise WorkerStartError(f"the local Dask cluster did not start "
                                               f"({exc}); {START_HINT}") from None
                self.client = distributed.Client(self.cluster)
            else:
                self.client = distributed.Client(address, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            self.close()
            raise BatchError(f"cannot reach the Dask scheduler at {address}: {exc}; start "
                             "it (dask scheduler) or check the address") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def capacity(self) -> int:
        """Jobs kept in flight: two per worker thread, so none idles while
        results come back (at least two, while workers are still starting)."""
        try:
            threads = sum(self.client.nthreads().values())
        except Exception:  # noqa: BLE001 - a scheduler hiccup: keep going slowly
            threads = 1
        return max(2, 2 * threads)

    @property
    def busy(self) -> int:
        return len(self._futures)

    def submit(self, key, fn, *args, **kwargs) -> str:
        future = self.client.submit(fn, *args, pure=False, **kwargs)
        self._futures[future] = key
        return ""

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        _, distributed = _import()
        if not self._futures:
            return []
        try:
            done, _ = distributed.wait(list(self._futures), timeout=timeout,
                                       return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        out = []
        for future in done:
            key = self._futures.pop(future)
            if future.status == "finished":
                value = future.result()
                out.append(Outcome(key, "ok", value, value.get("worker", "")
                                   if isinstance(value, dict) else ""))
                continue
            exc = future.exception()
            if isinstance(exc, distributed.KilledWorker) or future.status == "lost":
                out.append(Outcome(key, "died", None, ""))
            else:
                text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                out.append(Outcome(key, "error", text, ""))
            future.release()
        return out

    def close(self) -> None:
        for future in list(self._futures):
            future.cancel()
        self._futures.clear()
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self.cluster is not None:
            self.cluster.close()
