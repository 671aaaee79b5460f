"""ReadAhead: items reach the consumer in order, the first at once, errors after the items
before them; a consumer that falls behind gets batches; closing stops the reader."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from runtime.llm.read_ahead import ReadAhead


def feed_words(chunk: bytes, out: list[str]) -> bool:
    """Each chunk is space-separated words; the word STOP ends the stream, BAD is a parse error."""
    for word in chunk.decode().split():
        if word == "STOP":
            return True
        if word == "BAD":
            raise ValueError("unparseable chunk")
        out.append(word)
    return False


async def no_finish(out: list[str], completed: bool) -> None:
    return None


async def eager(chunks: list[bytes]) -> AsyncIterator[bytes]:
    """A source whose data is always already there: it never suspends, like a socket with a full buffer."""
    for chunk in chunks:
        yield chunk


async def drain(reader: ReadAhead[str]) -> list[list[str]]:
    batches = []
    try:
        while (batch := await reader.next_batch()) is not None:
            batches.append(batch)
    finally:
        await reader.aclose()
    return batches


async def test_the_first_item_is_handed_over_before_the_rest_is_parsed() -> None:
    chunks = [f"w{i}".encode() for i in range(500)]
    reader = ReadAhead(eager(chunks), feed_words, no_finish, clock=lambda: 0.0).start()
    batches = await drain(reader)
    assert batches[0] == ["w0"]  # not the whole stream at once: time to first token stays short
    assert [w for b in batches for w in b] == [f"w{i}" for i in range(500)]
    assert len(batches) < 10  # a consumer that fell behind takes what arrived meanwhile as one batch


async def test_a_first_chunk_holding_the_whole_reply_hands_over_its_first_item_alone() -> None:
    """``feed`` may keep the rest of a chunk back once it has a first item; ``resume`` parses it
    first thing in the reading task, before any further read, so nothing waits for the network."""
    kept: list[bytes] = []
    parsed_before_first: list[int] = []

    def feed(chunk: bytes, out: list[str]) -> bool:
        words = [*kept, *chunk.split()]
        kept.clear()
        for index, word in enumerate(words):
            if word == b"STOP":
                return True
            out.append(word.decode())
            if not parsed_before_first:
                parsed_before_first.append(index + 1)
                kept.extend(words[index + 1 :])
                return False
        return False

    reader = ReadAhead(
        eager([b"a b c d STOP"]), feed, no_finish, resume=lambda out: feed(b"", out) if kept else False
    ).start()
    batches = await drain(reader)
    assert batches[0] == ["a"] and parsed_before_first == [1]
    assert [w for b in batches for w in b] == ["a", "b", "c", "d"]


async def test_items_are_handed_over_at_least_every_max_hold() -> None:
    ticks = iter(range(10_000))
    reader = ReadAhead(
        eager([b"a", b"b", b"c", b"d"]), feed_words, no_finish, clock=lambda: float(next(ticks)), max_hold=0.5
    ).start()
    assert await drain(reader) == [["a"], ["b"], ["c"], ["d"]]


async def test_an_error_arrives_after_the_items_parsed_before_it() -> None:
    reader = ReadAhead(eager([b"one two BAD three"]), feed_words, no_finish).start()
    assert await reader.next_batch() == ["one", "two"]
    with pytest.raises(ValueError, match="unparseable"):
        await reader.next_batch()
    await reader.aclose()


async def test_finish_sees_whether_the_stream_completed_and_may_add_items() -> None:
    seen: list[bool] = []

    async def finish(out: list[str], completed: bool) -> None:
        seen.append(completed)
        out.append("end")

    def flat(batches: list[list[str]]) -> list[str]:
        return [item for batch in batches for item in batch]

    assert flat(await drain(ReadAhead(eager([b"a STOP never"]), feed_words, finish).start())) == ["a", "end"]
    assert flat(await drain(ReadAhead(eager([b"a b"]), feed_words, finish).start())) == ["a", "b", "end"]
    assert seen == [True, False]


async def test_closing_stops_a_reader_waiting_on_its_source() -> None:
    closed = asyncio.Event()
    release = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        try:
            yield b"first"
            await release.wait()  # the endpoint went quiet
            yield b"never"
        finally:
            closed.set()

    reader = ReadAhead(stalled(), feed_words, no_finish).start()
    assert await reader.next_batch() == ["first"]
    await reader.aclose()
    assert closed.is_set()
