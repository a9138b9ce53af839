"""One optimisation worker in a child process of its own (spawned), its outcome sent back
through a pipe.

A process per worker rather than a pool: when a pool's child dies, ``ProcessPoolExecutor``
terminates all its other children too, and a worker that dies must cost its own trial
only. Used by the analysis replicas and by ``tradebot optimise --workers N``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from multiprocessing.connection import Connection
from typing import Any

from analysis_service.optimisations.runner import StudyJob, WorkerOutcome, run_worker

CONTEXT = multiprocessing.get_context("spawn")  # no fork of a process with threads


class WorkerDied(RuntimeError):
    """The worker process ended without an outcome (killed, out of memory, crashed)."""


class WorkerFailed(RuntimeError):
    """The worker raised; ``error`` is the exception it raised."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(repr(error))
        self.error = error


def _child(job: StudyJob, conn: Connection) -> None:
    try:
        outcome: Any = ("done", run_worker(job))
    except Exception as exc:
        outcome = ("failed", exc)
    conn.send(outcome)
    conn.close()


class WorkerProcess:
    def __init__(self, job: StudyJob) -> None:
        self._reader, writer = CONTEXT.Pipe(duplex=False)
        self.process = CONTEXT.Process(target=_child, args=(job, writer), daemon=True)
        self.process.start()
        writer.close()  # the child holds the writing end

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def outcome(self) -> WorkerOutcome | None:
        """The outcome once the worker is done, None while it runs; raises WorkerFailed or
        WorkerDied."""
        if self._reader.poll():
            try:
                kind, value = self._reader.recv()
            except EOFError:
                raise self._died() from None
            self.process.join(timeout=5)
            if kind == "failed":
                raise WorkerFailed(value)
            result: WorkerOutcome = value
            return result
        if not self.process.is_alive():
            raise self._died()
        return None

    def _died(self) -> WorkerDied:
        return WorkerDied(f"the worker process ended with exit code {self.process.exitcode}")

    def stop(self) -> None:
        """Stop the worker now (its running trial is failed later by another worker)."""
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=5)
        with contextlib.suppress(OSError):
            self._reader.close()
