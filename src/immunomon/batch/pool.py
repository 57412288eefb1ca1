"""Local worker processes that run one job at a time and say which job a dead worker held.

``concurrent.futures.ProcessPoolExecutor`` breaks as a whole when one worker
dies and cannot tell which job killed it; a batch must retry exactly that file
and go on. So each worker here has its own pipe: the coordinator sends it one
job, waits on every pipe and every process sentinel at once, and when a
process ends without answering it knows the job it held and starts a new
worker in its place.

Workers are started with ``spawn`` (no inherited locks or file descriptors)
and run their maths single-threaded: parallelism comes from running several
files at once. A worker dies with its coordinator (``PR_SET_PDEATHSIG`` on
Linux, and a thread watching the parent's pid everywhere), so killing the
coordinator leaves nothing running.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import sys
import threading
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait

from .registry import BatchError

#: Environment for worker processes: one thread per BLAS/OpenMP pool.
SINGLE_THREAD_ENV = {name: "1" for name in (
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS")}


@dataclass
class Outcome:
    """What became of one submitted job."""

    key: object
    kind: str                  # "ok", "error" (the job raised) or "died" (its worker ended)
    value: object = None       # the job's return value, the traceback text, or the exit code
    worker: str = ""           # host:pid of the worker that ran it


def _die_with_parent(parent: int) -> None:
    """End this process when the coordinator ends, however it ends."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL))          # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch():
        import time
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:                           # it died before prctl took effect
        os._exit(1)


class WorkerStartError(BatchError):
    """Worker processes end before they can take a job: nothing a file did."""


#: Why a worker ends before it says it is ready: ``spawn`` imports the script that
#: started the pool again in each worker, and a script that starts work at import runs
#: it again there (its batch then finds the results folder locked, and the worker ends).
START_HINT = ("worker processes ended before they could gate a file: a script that runs a "
              "batch or a pipeline with workers must start it under "
              "`if __name__ == \"__main__\":` (each worker imports the script again)")


def refuse_while_bootstrapping() -> None:
    """Raise ``WorkerStartError`` in a worker process that is importing the script
    that started it: there a batch or a pipeline would wait on its parent's lock, or
    start workers of its own, rather than end."""
    # multiprocessing's own flag for a process still bootstrapping (spawn's check of
    # "start a new process before ... bootstrapping" reads it too)
    if getattr(mp.current_process(), "_inheriting", False):
        raise WorkerStartError(START_HINT)


def _worker_main(conn, parent: int) -> None:
    _die_with_parent(parent)
    os.environ.update(SINGLE_THREAD_ENV)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except Exception:  # noqa: BLE001 - a missing or odd BLAS only costs speed
        pass
    try:
        conn.send(("ready", None))       # started: a death from now on is its job's
    except (BrokenPipeError, OSError):
        return
    while True:
        try:
            fn, args, kwargs = conn.recv()
        except (EOFError, OSError):
            return
        try:
            result = ("ok", fn(*args, **kwargs))
        except BaseException:  # noqa: BLE001 - report everything, the coordinator decides
            result = ("error", traceback.format_exc())
        try:
            conn.send(result)
        except (BrokenPipeError, OSError):
            return


class _Worker:
    def __init__(self, ctx):
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(child, os.getpid()), daemon=True,
                                   name="immunomon-worker")
        self.process.start()
        child.close()
        self.key = None
        self.ready = False
        self.name = f"{socket.gethostname()}:{self.process.pid}"

    def receive(self):
        """The job's (kind, value), or (None, None) when the worker ended without an
        answer; the ready message before it is taken in passing."""
        try:
            while self.conn.poll():
                kind, value = self.conn.recv()
                if kind != "ready":
                    return kind, value
                self.ready = True
        except (EOFError, OSError):
            pass
        return None, None

    def stop(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass
        if self.key is not None:             # busy: its job is abandoned, stop it now
            self.process.kill()
        self.process.join(timeout=5)         # idle: it ends when its pipe closes
        if self.process.is_alive():          # ... or is made to
            self.process.kill()
            self.process.join()


class LocalPool:
    """``n`` worker processes. ``submit`` queues a job (and starts it at once
    when a worker is idle); ``wait`` returns the outcomes that are ready;
    ``outcomes`` yields every outcome until no job is left.

    Use as a context manager so the workers are stopped at the end."""

    def __init__(self, n: int):
        if n < 1:
            raise ValueError("a pool needs at least one worker")
        refuse_while_bootstrapping()
        self._ctx = mp.get_context("spawn")
        self._queue: deque = deque()
        self._workers = [_Worker(self._ctx) for _ in range(n)]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def capacity(self) -> int:
        """Jobs that can run at once."""
        return len(self._workers)

    @property
    def workers(self) -> list[str]:
        return [w.name for w in self._workers]

    @property
    def busy(self) -> int:
        return sum(w.key is not None for w in self._workers) + len(self._queue)

    def submit(self, key, fn, *args, **kwargs) -> str:
        """Queue ``fn(*args, **kwargs)``; returns the worker ("host:pid") that
        started it, or "" when every worker is busy."""
        self._queue.append((key, fn, args, kwargs))
        started = self._dispatch()
        return started.get(key, "")

    def _dispatch(self) -> dict:
        started = {}
        for i, w in enumerate(self._workers):
            if not self._queue:
                break
            if w.key is not None:
                continue
            key, fn, args, kwargs = self._queue[0]
            try:
                w.conn.send((fn, args, kwargs))
            except (BrokenPipeError, OSError):
                self._workers[i] = w = self._replace(w)    # died while idle: use a new one
                w.conn.send((fn, args, kwargs))
            self._queue.popleft()
            w.key = key
            started[key] = w.name
        return started

    def _replace(self, w: _Worker) -> _Worker:
        w.stop()
        return _Worker(self._ctx)

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        """The outcomes of jobs that have finished, waiting up to ``timeout``
        seconds (None: until at least one) when none has; [] when idle."""
        self._dispatch()
        busy = [w for w in self._workers if w.key is not None]
        if not busy:
            return []
        ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy],
                     timeout=timeout)
        out = []
        for i, w in enumerate(self._workers):
            if w.key is None or not (w.conn in ready or w.process.sentinel in ready):
                continue
            key, name = w.key, w.name
            kind, value = w.receive()
            if kind is None and w.process.is_alive():
                continue                     # only its ready message came
            if kind is None:                 # the process ended without answering
                w.process.join(timeout=5)
                code = w.process.exitcode
                if not w.ready:              # before it could take the job: not the file
                    self.close()
                    raise WorkerStartError(f"{START_HINT} ({describe_death(code)})")
                self._workers[i] = self._replace(w)
                out.append(Outcome(key, "died", code, name))
            else:
                w.key = None
                out.append(Outcome(key, kind, value, name))
        self._dispatch()
        return out

    def outcomes(self):
        """Yield every outcome until no job is queued or running."""
        while self.busy:
            yield from self.wait()

    def close(self) -> None:
        self._queue.clear()
        for w in self._workers:
            w.stop()


def describe_death(code) -> str:
    """'killed by signal 9 (SIGKILL: out of memory?)' or 'exit code 3'."""
    if code is None:
        return "no exit code"
    if code < 0:
        import signal
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = ": out of memory, or killed by someone" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}"
    return f"exit code {code}"


def map_jobs(fn, jobs: list[dict], *, workers: int, progress=None, attempts: int = 2) -> list:
    """``[fn(**job) for job in jobs]`` in ``workers`` processes, in input order.

    ``fn`` returns ``(row, table)`` as ``gating.run.gate_file`` does; a job
    whose worker dies is tried again, up to ``attempts`` times in all, then
    reported as a failed row. ``progress(row)`` is called as each finishes."""
    results: list = [None] * len(jobs)
    tries = [0] * len(jobs)
    with LocalPool(min(workers, len(jobs))) as pool:
        for i, job in enumerate(jobs):
            tries[i] += 1
            pool.submit(i, fn, **job)
        for out in pool.outcomes():
            i = out.key
            if out.kind == "ok":
                results[i] = out.value
            elif out.kind == "died" and tries[i] < attempts:
                tries[i] += 1
                pool.submit(i, fn, **jobs[i])
                continue
            else:
                why = (f"the worker process died ({describe_death(out.value)}), "
                       f"{tries[i]} times" if out.kind == "died"
                       else f"internal error ({out.value.strip().splitlines()[-1]})")
                results[i] = ({"sample": jobs[i].get("name"), "file": str(jobs[i]["path"]),
                               "status": "failed", "events": None, "flags": [], "page": None,
                               "error": "internal", "seconds": {},
                               "message": f"{jobs[i]['path']}: {why}"}, None)
            if progress is not None:
                progress(results[i][0])
    return results
