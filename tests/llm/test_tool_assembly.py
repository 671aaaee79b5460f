"""Tool calls assembled from streamed deltas; bad arguments become errors, never crashes."""

from __future__ import annotations

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
