"""The log stream of `tradebot up`: every line behind its service's prefix, and a service
never waits for an output that cannot keep up (lines are dropped and counted instead)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
import time

from tradebot.logstream import LogStream, render_prefix


def _writer(fd: int, chunks: list[bytes]) -> threading.Thread:
    def run() -> None:
        with os.fdopen(fd, "wb", buffering=0) as pipe:
            for chunk in chunks:
                pipe.write(chunk)
                time.sleep(0.01)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


class _Output(io.BytesIO):
    """An output whose writes can be held (a terminal that stopped scrolling)."""

    def __init__(self) -> None:
        super().__init__()
        self.open_gate = threading.Event()
        self.open_gate.set()

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.open_gate.wait()
        return super().write(data)


def test_lines_of_several_pipes_come_out_whole_each_behind_its_prefix() -> None:
    output = _Output()
    logs = LogStream(output)
    market_read, market_write = os.pipe()
    user_read, user_write = os.pipe()
    logs.follow(market_read, b"market | ")
    logs.follow(user_read, b"user | ")
    writers = [
        # A line split across writes, several lines in one write, no final newline.
        _writer(market_write, [b'{"a": ', b'1}\n{"b": 2}\n{"c"', b": 3}\n", b"tail"]),
        _writer(user_write, [b"one\ntwo\n"]),
    ]
    for writer in writers:
        writer.join()
    logs.close()
    lines = output.getvalue().decode().splitlines()
    assert sorted(lines) == sorted(
        [
            'market | {"a": 1}',
            'market | {"b": 2}',
            'market | {"c": 3}',
            "market | tail",
            "user | one",
            "user | two",
        ]
    )
    assert [line for line in lines if line.startswith("market")][:3] == [
        'market | {"a": 1}',
        'market | {"b": 2}',
        'market | {"c": 3}',
    ]
    assert logs.dropped == 0


def test_a_stalled_output_never_blocks_the_writing_process() -> None:
    """A child writing 20 MB of log lines finishes while the output is held; the lines
    beyond the backlog are dropped, and the output says how many once it moves again."""
    output = _Output()
    output.open_gate.clear()
    logs = LogStream(output, max_backlog=256 * 1024)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "line = b'x' * 99 + b'\\n'\n"
            "for _ in range(200_000): sys.stdout.buffer.write(line)\n",
        ],
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    reader = logs.follow(child.stdout.fileno(), b"svc | ")
    assert child.wait(timeout=60) == 0  # finished although nothing reached the output
    reader.join(30)  # every line it wrote read: written (held) or dropped
    assert not reader.is_alive()
    assert logs.dropped > 0
    output.open_gate.set()
    logs.close()
    text = output.getvalue().decode()
    # One note per write that followed drops: when the writer took its first batch after
    # the backlog had already filled (a loaded machine), the count comes in two notes.
    notes = re.findall(r"could not keep up: (\d+) lines dropped", text)
    assert notes
    assert sum(map(int, notes)) == logs.dropped
    written = [line for line in text.splitlines() if line.startswith("svc | ")]
    assert len(written) + logs.dropped == 200_000
    assert all(line == "svc | " + "x" * 99 for line in written)


def test_the_prefix_is_rendered_once_by_the_given_renderer() -> None:
    calls: list[tuple[str, str]] = []

    def render(text: str, colour: str) -> str:
        calls.append((text, colour))
        return f"<{colour}>{text}</>"

    assert render_prefix(render, "market", "green") == b"<green>      market |</> "
    assert calls == [("      market |", "green")]
