"""Tool calls assembled from streamed deltas; bad arguments become errors, never crashes."""

from __future__ import annotations

import itertools
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.llm.prompt_tools import describe_tools, looks_like_tool_json, parse_tool_reply, with_tools_in_prompt
from runtime.llm.stream_events import ToolCallError, ToolCallReady
from runtime.llm.tool_assembly import ToolCallAssembler


def head(index: int, call_id: str, name: str) -> dict:
    return {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}


def frag(index: int, text: str) -> dict:
    return {"index": index, "function": {"arguments": text}}


def test_parallel_calls_interleaved_across_chunks_are_assembled_in_index_order() -> None:
    asm = ToolCallAssembler()
    for delta in [
        head(1, "call_b", "clock"),
        head(0, "call_a", "calculator"),
        frag(0, '{"expre'),
        frag(1, '{"timez'),
        frag(0, 'ssion": "1+'),
        frag(1, 'one": "UTC"}'),
        frag(0, '2"}'),
    ]:
        asm.feed(delta)
    a, b = asm.finish()
    assert isinstance(a, ToolCallReady) and isinstance(b, ToolCallReady)
    assert (a.call.id, a.name, a.arguments) == ("call_a", "calculator", {"expression": "1+2"})
    assert (b.call.id, b.name, b.arguments) == ("call_b", "clock", {"timezone": "UTC"})
    assert not asm  # finish() leaves it empty for the next reply


def test_malformed_arguments_become_a_tool_call_error() -> None:
    asm = ToolCallAssembler()
    asm.feed(head(0, "call_a", "calculator"))
    asm.feed(frag(0, '{"expression": "1+'))
    (event,) = asm.finish()
    assert isinstance(event, ToolCallError)
    assert event.call.arguments == '{"expression": "1+'
    assert "not valid JSON" in event.error and "calculator" in event.error


def test_arguments_must_be_an_object_and_empty_means_no_arguments() -> None:
    asm = ToolCallAssembler()
    asm.feed(head(0, "a", "calculator"))
    asm.feed(frag(0, "[1, 2]"))
    asm.feed(head(1, "b", "clock"))
    bad, empty = asm.finish()
    assert isinstance(bad, ToolCallError) and "must be a JSON object" in bad.error
    assert isinstance(empty, ToolCallReady) and empty.arguments == {}


def test_servers_that_omit_the_index_are_tolerated() -> None:
    asm = ToolCallAssembler()
    asm.feed({"id": "x1", "function": {"name": "clock", "arguments": '{"timezone":'}})
    asm.feed({"function": {"arguments": ' "UTC"}'}})
    asm.feed({"id": "x2", "function": {"name": "calculator", "arguments": '{"expression": "2*3"}'}})
    first, second = asm.finish()
    assert isinstance(first, ToolCallReady) and first.arguments == {"timezone": "UTC"}
    assert isinstance(second, ToolCallReady) and second.call.id == "x2"


def test_prompt_described_tools_and_their_json_replies() -> None:
    tools = [
        {
            "type": "function",
            "function": {"name": "calculator", "description": "Evaluate arithmetic", "parameters": {"type": "object"}},
        }
    ]
    text = describe_tools(tools)
    assert text.startswith('Available tools:\n- calculator: Evaluate arithmetic Parameters: {"type":"object"}')
    messages = with_tools_in_prompt([{"role": "user", "content": "hi"}], tools)
    assert messages[0]["role"] == "system" and "calculator" in messages[0]["content"]
    (call,) = parse_tool_reply(
        '```json\n{"tool": "calculator", "arguments": {"expression": "1+1"}}\n```', ["calculator"]
    )
    assert call.name == "calculator" and call.arguments == '{"expression": "1+1"}'
    # A request in the tool form naming an unknown tool is still a call: the runner answers
    # "unknown tool" (nothing runs) and the model can correct itself; an object merely having
    # a "name" is an answer unless it names a listed tool.
    (unknown,) = parse_tool_reply('{"tool": "rm_rf", "arguments": {}}', ["calculator"])
    assert unknown.name == "rm_rf"
    assert parse_tool_reply('{"name": "Ada", "arguments": "none"}', ["calculator"]) is None
    assert parse_tool_reply("The answer is {probably} 2", ["calculator"]) is None
    assert looks_like_tool_json("  {") and not looks_like_tool_json("Sure {")


# ---------------------------------------------------------------- any split, any interleaving

NAMES = st.sampled_from(["calculator", "clock", "memory", "notes"])
VALUES = st.one_of(st.integers(-1000, 1000), st.text(max_size=12), st.booleans(), st.none())
ARGS = st.dictionaries(st.text(min_size=1, max_size=8), VALUES, max_size=4)


def _fragments(data: st.DataObject, text: str) -> list[str]:
    """``text`` split at random points (possibly inside an escape or a multi-byte character's
    JSON escape): the pieces a server streams."""
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(text) - 1)), max_size=6)))
    bounds = [0, *[c for c in cuts if 0 < c < len(text)], len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), style=st.sampled_from(["openai", "index_zero", "id_every_fragment", "objects"]))
def test_any_split_and_interleaving_assembles_every_call_once_with_its_own_arguments(
    data: st.DataObject, style: str
) -> None:
    """Randomly split and reordered tool-call deltas, in the shapes real servers send:

    * ``openai``: head (index, id, name) then argument fragments by index, calls interleaved;
    * ``index_zero`` (llama.cpp): every call at index 0, one after the other, fragments by index;
    * ``id_every_fragment`` (older vLLM): the id on every fragment, indexes missing, interleaved;
    * ``objects``: each call whole with ``arguments`` as a JSON object, at index 0.
    """
    calls = data.draw(st.lists(st.tuples(NAMES, ARGS), min_size=1, max_size=4))
    ids = [f"call_{i}" for i in range(len(calls))]
    sequences: list[list[dict]] = []
    for position, ((name, args), call_id) in enumerate(zip(calls, ids, strict=True)):
        pieces = _fragments(data, json.dumps(args, ensure_ascii=data.draw(st.booleans())))
        if style == "openai":
            seq = [head(position, call_id, name)] + [frag(position, p) for p in pieces]
        elif style == "index_zero":
            seq = [head(0, call_id, name)] + [frag(0, p) for p in pieces]
        elif style == "id_every_fragment":
            seq = [{"id": call_id, "function": {"name": name, "arguments": ""}}]
            seq += [{"id": call_id, "function": {"arguments": p}} for p in pieces]
        else:
            seq = [{"index": 0, "id": call_id, "function": {"name": name, "arguments": args}}]
        sequences.append(seq)
    if style == "index_zero":
        deltas = [d for seq in sequences for d in seq]  # same index: only order tells calls apart
    else:
        deltas = []
        cursors = [0] * len(sequences)
        while any(c < len(s) for c, s in zip(cursors, sequences, strict=True)):
            live = [i for i, s in enumerate(sequences) if cursors[i] < len(s)]
            pick = data.draw(st.sampled_from(live))
            deltas.append(sequences[pick][cursors[pick]])
            cursors[pick] += 1
    asm = ToolCallAssembler()
    for delta in deltas:
        asm.feed(delta)
    out = asm.finish()
    assert all(isinstance(e, ToolCallReady) for e in out), out
    got = {e.call.id: (e.name, e.arguments) for e in out if isinstance(e, ToolCallReady)}
    assert len(out) == len(calls) == len(got)  # each call once, each with its own id
    assert got == {call_id: (name, args) for (name, args), call_id in zip(calls, ids, strict=True)}
