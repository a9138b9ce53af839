"""Every service's output through one process, each line behind a coloured prefix, without
ever slowing a service down.

A service writes one log line per request. Under load that is thousands of lines a second
per service, and the pipe between a service and this process holds only 64 KiB: whenever
this process falls behind, the pipe fills and the service's next write blocks its event
loop. So the work here is kept off the per-line path: one reader thread per service reads
whatever the pipe holds in one ``os.read`` and prefixes all of its lines with two byte
operations (the coloured prefix is rendered once); one writer thread writes every batch
with one ``write``. Readers never wait for the writer: when the terminal cannot keep up
and the backlog passes ``max_backlog`` bytes, lines are dropped and counted, and the writer
says how many were dropped, so a slow terminal costs log lines on screen, never service
throughput (docs/operations.md, `tradebot up`).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable
from typing import BinaryIO

READ_SIZE = 1 << 16
PIPE_SIZE = 1 << 20  # what a burst may hold while the readers are descheduled
MAX_BACKLOG = 16 << 20
_F_SETPIPE_SZ = 1031  # Linux only; elsewhere the default pipe size stays


def widen_pipe(fd: int, size: int = PIPE_SIZE) -> None:
    """Ask for a larger pipe buffer (best effort: capped by /proc/sys/fs/pipe-max-size)."""
    try:
        fcntl.fcntl(fd, _F_SETPIPE_SZ, size)
    except OSError:
        pass


class LogStream:
    """Prefixed lines of many pipes into one output, batched, dropping rather than blocking."""

    def __init__(self, output: BinaryIO, *, max_backlog: int = MAX_BACKLOG) -> None:
        self._output = output
        self._max_backlog = max_backlog
        self._lock = threading.Condition()
        self._batches: list[bytes] = []
        self._backlog = 0
        self._dropped = 0
        self._closed = False
        self._readers: list[threading.Thread] = []
        self._writer = threading.Thread(target=self._write_loop, name="log-writer", daemon=True)
        self._writer.start()

    def follow(self, fd: int, prefix: bytes) -> threading.Thread:
        """Read ``fd`` (a pipe's read end) until end of file, each line behind ``prefix``."""
        widen_pipe(fd)
        reader = threading.Thread(
            target=self._read_loop, args=(fd, prefix), name="log-reader", daemon=True
        )
        self._readers.append(reader)
        reader.start()
        return reader

    def close(self, timeout: float = 5.0) -> None:
        """Wait for the readers to reach end of file, write what is left, stop the writer."""
        for reader in self._readers:
            reader.join(timeout)
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._writer.join(timeout)

    @property
    def dropped(self) -> int:
        """Lines dropped so far because the output could not keep up."""
        return self._dropped

    def _read_loop(self, fd: int, prefix: bytes) -> None:
        partial = b""
        separator = b"\n" + prefix
        while True:
            try:
                data = os.read(fd, READ_SIZE)
            except OSError:
                data = b""
            if not data:
                if partial:
                    self._put(prefix + partial + b"\n", 1)
                return
            end = data.rfind(b"\n")
            if end < 0:
                partial += data
                if len(partial) < READ_SIZE:
                    continue
                # A line longer than a read: out it goes in pieces rather than held whole.
                block, partial = partial, b""
            else:
                block, partial = partial + data[:end], data[end + 1 :]
            self._put(prefix + block.replace(b"\n", separator) + b"\n", block.count(b"\n") + 1)

    def _put(self, batch: bytes, lines: int) -> None:
        with self._lock:
            if self._backlog + len(batch) > self._max_backlog:
                self._dropped += lines
                return
            self._batches.append(batch)
            self._backlog += len(batch)
            self._lock.notify()

    def _write_loop(self) -> None:
        reported = 0
        while True:
            with self._lock:
                while not self._batches and not self._closed:
                    self._lock.wait()
                batches, self._batches = self._batches, []
                self._backlog = 0
                dropped, closed = self._dropped, self._closed
            if dropped > reported:
                batches.append(
                    f"(log output could not keep up: {dropped - reported} lines dropped)\n".encode()
                )
                reported = dropped
            if batches:
                try:
                    self._output.write(b"".join(batches))
                    self._output.flush()
                except (OSError, ValueError):
                    pass  # the terminal went away: the services keep running regardless
            if closed:
                return


def render_prefix(render: Callable[[str, str], str], name: str, colour: str) -> bytes:
    """``"      market | "`` in the service's colour, rendered once by ``render``."""
    return render(f"{name:>12} |", colour).encode() + b" "
