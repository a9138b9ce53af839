"""The feed's uvicorn protocol: frames written raw are valid and never follow a close."""

from __future__ import annotations

from typing import Any

import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.streams import StreamReader

from market_service.feed.protocol import RawFrameWriter, encode_text_frame


def parse_server_frame(data: bytes) -> Frame:
    """Parse with websockets' own reader, as a client does (server frames are unmasked)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    with pytest.raises(StopIteration) as done:
        next(parser)
    frame: Frame = done.value.value
    assert reader.at_eof()  # exactly one frame, nothing left over
    return frame


@pytest.mark.parametrize("size", [0, 125, 126, 204, 65535, 65536])
def test_an_encoded_frame_is_one_unmasked_text_frame_with_the_payload(size: int) -> None:
    payload = b"x" * size
    frame = parse_server_frame(encode_text_frame(payload))
    assert frame.opcode is Opcode.TEXT
    assert frame.fin
    assert not frame.rsv1  # not compressed
    assert frame.data == payload


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return sum(map(len, self.written))  # as if the kernel took nothing

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.aborted = True


class FakeConnection:
    def __init__(self, state: State) -> None:
        self.state = state


class FakeProtocol:
    def __init__(self, state: State = State.OPEN) -> None:
        self.conn = FakeConnection(state)
        self.transport = FakeTransport()


def test_the_writer_writes_an_open_connection_and_reports_what_is_unsent() -> None:
    protocol = FakeProtocol()
    writer = RawFrameWriter(protocol)  # type: ignore[arg-type]
    assert writer.write(b"abc") == 3
    assert writer.write(b"de") == 5
    assert protocol.transport.written == [b"abc", b"de"]
    writer.abort()
    assert protocol.transport.aborted


@pytest.mark.parametrize("state", [State.CONNECTING, State.CLOSING, State.CLOSED])
def test_the_writer_writes_nothing_unless_the_connection_is_open(state: Any) -> None:
    protocol = FakeProtocol(state)
    writer = RawFrameWriter(protocol)  # type: ignore[arg-type]
    assert writer.write(b"abc") is None
    assert protocol.transport.written == []


def test_the_writer_writes_nothing_once_the_transport_is_closing() -> None:
    protocol = FakeProtocol()
    protocol.transport.closing = True
    writer = RawFrameWriter(protocol)  # type: ignore[arg-type]
    assert writer.write(b"abc") is None
    assert protocol.transport.written == []
