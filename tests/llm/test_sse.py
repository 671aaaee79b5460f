"""SSEDecoder: the same events however the network splits the bytes, any line ending."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from runtime.llm.sse import SSEDecoder

EVENTS = [b'{"a":1}', b'{"text":"caf\xc3\xa9 \xf0\x9f\x98\x80"}', b"[DONE]"]


def decode(chunks: list[bytes]) -> list[bytes]:
    decoder = SSEDecoder()
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out + decoder.flush()


def split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts})
    return [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]


@given(st.sampled_from([b"\n", b"\r\n", b"\r"]), st.lists(st.integers(min_value=0), max_size=12))
def test_events_survive_any_split_and_line_ending(newline: bytes, cuts: list[int]) -> None:
    body = b"".join(b"data: " + e + newline + newline for e in EVENTS)
    assert decode(split(body, cuts)) == EVENTS


def test_comments_fields_and_multiline_data() -> None:
    body = b': keep-alive\n\nevent: message\nid: 7\ndata: {"a":\ndata:1}\n\nretry: 10\n\n'
    assert decode([body]) == [b'{"a":\n1}']


def test_a_last_event_without_its_blank_line_is_still_delivered() -> None:
    assert decode([b"data: one\n\ndata: two"]) == [b"one", b"two"]
