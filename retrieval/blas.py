"""BLAS threads for request-sized work."""

from __future__ import annotations

from contextlib import nullcontext

_BLAS = None


def single_threaded_blas():
    """A context in which numpy's BLAS runs on one thread. A request's work is a
    few catalog-sized matrix-vector products; on a busy machine a multi-threaded
    BLAS spends more time waiting for its threads than computing (measured on 2
    shared cores: 9,742 x 384 sgemv 3-4 ms with 2 threads, 0.6-0.8 ms with 1)."""
    global _BLAS
    if _BLAS is None:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS = ThreadpoolController()
        except Exception:  # noqa: BLE001 - optional: without it BLAS keeps its default threads
            _BLAS = False
    return _BLAS.limit(limits=1, user_api="blas") if _BLAS else nullcontext()
