"""The thread policy of the per-file job: one thread per file, files side by side.

A sample's native maths is small: events x 20 by 20 x 20 products, 2 x 2 solves,
k-means on a few thousand points. BLAS and OpenMP thread pools cost far more than they
save on such work, and on a shared server (or with several workers gating files at
once) their threads fight for the cores: a triangular solve that takes 80 us on one
thread took 18 ms with the pools at their defaults on a busy 2-core machine. So the
whole per-file job runs its BLAS and OpenMP maths on one thread, and parallelism comes
from gating several files at once in worker processes.

``single_threaded()`` is that policy, the one place that sets it. It limits every
pool already loaded (numpy's and scipy's BLAS, an OpenMP runtime, through
threadpoolctl) and, while it is active, sets the variables a pool reads when it loads
(``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ...), so a library first imported
inside the job starts with one thread too;
``IMMUNOMON_THREADS`` is 1 as well, so the transforms do not split large arrays across
threads of their own.
On leaving, the pools and the variables are as they were, and pools first loaded
inside get the thread count they would have had, so code run afterwards in the same
process is not slowed down. Entering it again inside (compensation, statistics and
the gate job all ask for it) costs nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

#: Variables the thread pools read when their library loads.
POOL_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                  "BLIS_NUM_THREADS")
#: immunomon's own threads (the logicle and hyperlog tables of ``immunomon.transforms``
#: split large arrays across threads), read on every call.
OWN_VARIABLE = "IMMUNOMON_THREADS"

_lock = threading.RLock()
_depth = 0
_state: dict = {}
_scan: dict = {"controller": None, "modules": -1}


def _controller():
    """The pools loaded in this process; scanned again only after new imports
    (a pool library arrives with an extension module)."""
    from threadpoolctl import ThreadpoolController

    if _scan["controller"] is None or _scan["modules"] != len(sys.modules):
        _scan["controller"] = ThreadpoolController()
        _scan["modules"] = len(sys.modules)
    return _scan["controller"]


def _default_threads(user_api: str, environ: dict) -> int:
    """The threads a pool takes when it loads outside the policy."""
    names = ("OMP_NUM_THREADS",) if user_api == "openmp" else POOL_VARIABLES[1:] + (
        "OMP_NUM_THREADS",)
    for name in names:
        try:
            return max(1, int(str(environ.get(name)).split(",")[0]))
        except ValueError:
            continue
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _enter() -> None:
    environ = {k: os.environ.get(k) for k in (*POOL_VARIABLES, OWN_VARIABLE)}
    os.environ.update({k: "1" for k in (*POOL_VARIABLES, OWN_VARIABLE)})
    try:
        controller = _controller()
        limiter = controller.limit(limits=1)
        known = {lib.filepath for lib in controller.lib_controllers}
    except Exception:   # noqa: BLE001 - threadpoolctl cannot inspect this platform: run as is
        limiter, known = None, None
    _state.update(environ=environ, limiter=limiter, known=known)


def _leave() -> None:
    environ, limiter, known = _state["environ"], _state["limiter"], _state["known"]
    for key, value in environ.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if limiter is None:
        return
    limiter.restore_original_limits()
    try:
        for lib in _controller().lib_controllers:
            if lib.filepath not in known:          # loaded inside, with one thread
                lib.set_num_threads(_default_threads(lib.user_api, environ))
    except Exception:   # noqa: BLE001 - as on entering
        pass


@contextlib.contextmanager
def single_threaded():
    """Run the block with BLAS and OpenMP on one thread (see the module docstring)."""
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1:
            _enter()
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _leave()


def pool_threads() -> dict[str, int]:
    """Threads of each loaded pool, by library file name (for reports and tests)."""
    from threadpoolctl import threadpool_info

    return {os.path.basename(i["filepath"]): int(i["num_threads"]) for i in threadpool_info()}
