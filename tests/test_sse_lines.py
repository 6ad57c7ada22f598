"""A provider's stream is read line by line as the SSE spec splits it, wherever its TCP chunks
happen to end (providers.sse.lines_of)."""

import asyncio

import pytest

from providers.sse import events_of, lines_of


class Chunks:
    """A response whose body arrives in exactly these pieces."""

    def __init__(self, *pieces: bytes):
        self.pieces = pieces

    async def aiter_bytes(self):
        for piece in self.pieces:
            yield piece


def lines(*pieces: bytes) -> list[str]:
    async def read():
        return [line async for line in lines_of(Chunks(*pieces))]
    return asyncio.run(read())


def events(*pieces: bytes) -> list[str]:
    """The events' data, read as every adapter reads them (events_of)."""
    async def read():
        return [event.data async for event in events_of(Chunks(*pieces))]
    return asyncio.run(read())


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_newline_the_spec_allows_ends_a_line(newline):
    body = b"data: one" + newline + newline + b"data: two" + newline + newline
    assert events(body) == ["one", "two"]


def test_a_crlf_cut_between_two_chunks_is_one_line_end():
    assert lines(b"data: one\r", b"\ndata: two\r\n") == ["data: one", "data: two"]


def test_a_character_cut_between_two_chunks_is_read_whole():
    encoded = "data: héllo ✓\n\n".encode()
    cut = encoded.index("✓".encode()) + 1
    assert events(encoded[:cut], encoded[cut:]) == ["héllo ✓"]


def test_unicode_line_separators_inside_json_do_not_split_an_event():
    # str.splitlines() would cut at U+2028; the SSE spec does not.
    assert events('data: {"content": "a\u2028b"}\n\n'.encode()) == ['{"content": "a\u2028b"}']


def test_a_last_line_without_newline_still_counts():
    assert lines(b"data: one\n", b"data: tw", b"o") == ["data: one", "data: two"]


def test_events_keep_their_names_and_join_their_data_lines_across_chunks():
    async def read():
        return [(event.event, event.data) async for event in events_of(
            Chunks(b": keep-alive\n\nevent: delta\nda", b"ta: one\ndata: two\n\n", b"data: last"))]
    assert asyncio.run(read()) == [("delta", "one\ntwo"), ("message", "last")]
