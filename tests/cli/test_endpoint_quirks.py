"""The CLI against endpoints that behave like real ones: visible retries, honest figures, exit
codes for replies that are not answers, and doctor on an endpoint without ``GET /models``.

The demo server's quirk profiles play the common servers; :class:`ScriptedLLM` (a real HTTP
server on a free port) plays the shapes no profile makes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from runtime.agent.turn import cut_off_note
from runtime.cli.main import main
from tests.support.cli import Run
from tests.support.scripted_llm import Reply, ScriptedLLM, chunk, completion, sse

Holdfast = Callable[..., Run]

pytestmark = [pytest.mark.redis, pytest.mark.e2e]  # the CLI against the demo LLM server and ScriptedLLM over HTTP


@pytest.fixture
def retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three attempts with short fixed waits, so a retried call is quick and its lines are exact."""
    for name, value in {
        "MAX_ATTEMPTS": "3",
        "INITIAL_DELAY": "0.01",
        "MAX_DELAY": "0.02",
        "JITTER": "false",
    }.items():
        monkeypatch.setenv(f"HOLDFAST_RESILIENCE__LLM__{name}", value)


def conversation_of(run: Run) -> str:
    found = re.search(r"\[conversation (conv_\w+)\]", run.err)
    assert found, run.err
    return found.group(1)


# ---------------------------------------------------------------- case 12: visible retries


def test_each_retry_is_one_stderr_line(holdfast: Holdfast, set_faults: Callable[..., None], retries: None) -> None:
    set_faults(fail_next=2, error_status=503)
    run = holdfast("chat", "hello there")
    assert run.code == 0, run.err
    lines = re.findall(r"^\[retry (\d+)/(\d+) in (\d+\.\d) s: (.*)\]$", run.err, re.MULTILINE)
    assert [(n, of) for n, of, _, _ in lines] == [("2", "3"), ("3", "3")]
    assert all("HTTP 503" in why for _, _, _, why in lines)
    assert run.out.startswith("[holdfast-demo]")


def test_json_emits_the_retry_events(holdfast: Holdfast, set_faults: Callable[..., None], retries: None) -> None:
    set_faults(fail_next=1, error_status=502)
    run = holdfast("chat", "--json", "hello there")
    assert run.code == 0, run.err
    events = run.json_lines()
    retried = [e for e in events if e["type"] == "RetryScheduled"]
    conv = next(e["conversation_id"] for e in events if e["type"] == "UserSaved")
    assert len(retried) == 1
    assert retried[0]["conversation_id"] == conv and retried[0]["attempt"] == 1 and retried[0]["max_attempts"] == 3
    assert "HTTP 502" in retried[0]["error"]
    # in the order they happened: the retry between the prompt and the answer
    kinds = [e["type"] for e in events]
    assert kinds.index("PromptBuilt") < kinds.index("RetryScheduled") < kinds.index("TextDelta")


# ---------------------------------------------------------------- case 12: honest figures


def test_usage_says_reported_or_estimated(holdfast: Holdfast, scripted: Callable[[list[Reply]], ScriptedLLM]) -> None:
    reported = holdfast("chat", "hello there")
    assert re.search(r"^\[tokens: \d+ prompt \+ \d+ completion \(reported by the endpoint\)\]$", reported.err, re.M)
    quiet = scripted([sse(chunk({"content": "Hi, no usage from me."}), chunk({}, "stop"))])
    estimated = holdfast("--base-url", quiet.url, "chat", "hello there")
    assert estimated.code == 0, estimated.err
    assert re.search(r"^\[tokens: \d+ prompt \+ \d+ completion \(estimated\)\]$", estimated.err, re.M)
    streamed = holdfast("--base-url", quiet.url, "chat", "--json", "hello there")
    finished = streamed.json_lines()[-1]
    assert finished["type"] == "TurnFinished" and finished["usage_source"] == "estimated"


@pytest.mark.parametrize(
    "body",
    [b"", b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"],
)
def test_error_text_does_not_repeat_itself(
    holdfast: Holdfast, scripted: Callable[[list[Reply]], ScriptedLLM], body: bytes
) -> None:
    proxy = scripted([Reply(body, 502, "text/html")])
    run = holdfast("--base-url", proxy.url, "chat", "hello there")
    assert run.code == 1
    failed = next(line for line in run.err.splitlines() if line.startswith("[turn failed:"))
    assert failed.count("502") == 1 and "HTTP 502: HTTP 502" not in run.out + run.err
    if body:
        assert "Bad Gateway" in failed


# ---------------------------------------------------------------- replies that are not answers


def test_an_empty_answer_after_thinking_exits_1(
    holdfast: Holdfast, scripted: Callable[[list[Reply]], ScriptedLLM]
) -> None:
    thinker = scripted(
        [
            sse(
                chunk({"role": "assistant", "reasoning_content": "The user greets me. "}),
                chunk({"reasoning_content": "I should answer kindly."}),
                chunk({"content": None}, "stop"),
            )
        ]
    )
    run = holdfast("--base-url", thinker.url, "chat", "hello there")
    assert run.code == 1
    assert "[thinking…]" in run.err
    assert "[turn failed: the model returned an empty answer after thinking" in run.err
    assert run.out.strip() == ""
    exported = holdfast("conversations", "export", conversation_of(run), "--format", "json")
    assert [m["role"] for m in json.loads(exported.out)["messages"]] == ["user"]


def test_a_cut_off_reply_is_kept_marked_with_a_notice_and_exit_0(
    holdfast: Holdfast, set_faults: Callable[..., None]
) -> None:
    set_faults(profile="truncating")
    run = holdfast("chat", "tell me a long story about the sea")
    assert run.code == 0, run.err
    # The profile's 512-token context stops the reply long before the 1024-token output limit.
    used = re.search(r"^\[tokens: \d+ prompt \+ (\d+) completion \(reported by the endpoint\)\]$", run.err, re.M)
    assert used, run.err
    got = int(used.group(1))
    note = cut_off_note(1024, got)
    assert note == f"[cut off after {got} tokens: the endpoint's context window is full]"
    assert run.out.rstrip().endswith(note)
    conv = conversation_of(run)
    assert f"[notice: the reply was cut off after {got} tokens, short of [llm].max_output_tokens (1024)" in run.err
    assert f'holdfast chat --conversation {conv} "continue"' in run.err


def test_a_json_reply_to_a_stream_request_is_the_answer(
    holdfast: Holdfast, scripted: Callable[[list[Reply]], ScriptedLLM]
) -> None:
    """Case 6 through the CLI: one POST, the answer printed, one notice, exit 0."""
    gateway = scripted(
        [completion({"content": "Whole, not streamed."}, usage={"prompt_tokens": 9, "completion_tokens": 4})]
    )
    run = holdfast("--base-url", gateway.url, "chat", "hello there")
    assert run.code == 0, run.err
    assert run.out.strip() == "Whole, not streamed."
    assert len(gateway.requests) == 1 and gateway.requests[0]["stream"] is True
    assert "[notice: the LLM endpoint answers without streaming" in run.err
    assert "[tokens: 9 prompt + 4 completion (reported by the endpoint)]" in run.err


# ---------------------------------------------------------------- case 7: prompt tools wrapped in words


def test_a_prompt_tool_request_inside_words_runs_the_tool(
    holdfast: Holdfast, scripted: Callable[[list[Reply]], ScriptedLLM]
) -> None:
    """--preset llamacpp describes the tools in the prompt; a local model that answers with words
    and a fenced request gets the tool run and the result sent back, not the JSON printed."""
    request = 'I will use the calculator.\n```json\n{"tool": "calculator", "arguments": {"expression": "2+3"}}\n```'
    model = scripted(
        [
            sse(*(chunk({"content": request[i : i + 9]}) for i in range(0, len(request), 9)), chunk({}, "stop")),
            sse(chunk({"content": "2+3 is 5."}), chunk({}, "stop")),
        ]
    )
    run = holdfast("--preset", "llamacpp", "--base-url", model.url, "chat", "what is 2+3?")
    assert run.code == 0, run.err
    assert "[tool calculator: ok] 2+3 = 5" in run.err
    assert "tools" not in model.requests[0] and "Available tools:" in model.requests[0]["messages"][0]["content"]
    assert model.requests[1]["messages"][-1] == {"role": "user", "content": "[tool result calculator]: 2+3 = 5"}
    assert run.out == "I will use the calculator.\n2+3 is 5.\n"  # the step's words, then the answer


# ---------------------------------------------------------------- case 10: doctor


def test_doctor_accepts_an_endpoint_without_models(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    scripted: Callable[[list[Reply]], ScriptedLLM],
) -> None:
    """A proxy with no GET /models (404) that answers chat: doctor agrees with chat and health."""
    monkeypatch.setenv("HOLDFAST_MEMORY__EMBEDDING_PROVIDER", "lexical")
    proxy = scripted([completion({"content": "p"})])
    code = main(["--base-url", proxy.url, "--model", "scripted", "doctor"])
    out = capsys.readouterr().out
    llm_line = next(line for line in out.splitlines() if " llm " in line)
    assert code == 0, out
    assert llm_line.lstrip().startswith("ok") and "a one-token completion answered" in llm_line
    assert proxy.requests[0]["max_tokens"] == 1


# ---------------------------------------------------------------- every profile through the CLI


@pytest.mark.parametrize(
    "profile", ["openai", "ollama", "llamacpp", "vllm-reasoning", "mistral", "openrouter", "no-stream", "no-tools"]
)
def test_the_cli_answers_with_tools_under_every_profile(
    profile: str, holdfast: Holdfast, set_faults: Callable[..., None]
) -> None:
    """Cases 1-3, 6, 7, 9 through the command a user runs: both tool calls, the answer, exit 0."""
    set_faults(profile=profile)
    run = holdfast("chat", "what is 2+3 and 7*6?")
    assert run.code == 0, run.err
    assert '"2+3 = 5"' in run.out and '"7*6 = 42"' in run.out
    assert run.err.count("[tool calculator: ok]") == 2 and "Traceback" not in run.err
    if profile == "vllm-reasoning":
        assert run.err.count("[thinking…]") == 1
        # vLLM reports totals, not the thinking share: the counted share is not passed off as reported
        assert re.search(
            r"^\[tokens: \d+ prompt \+ \d+ completion, \d+ of them thinking \(partly estimated\)\]$", run.err, re.M
        )


def test_an_error_inside_the_stream_exits_1_keeping_what_was_shown(
    holdfast: Holdfast, set_faults: Callable[..., None]
) -> None:
    set_faults(profile="flaky-stream")
    run = holdfast("chat", "hello, how are you?")
    assert run.code == 1
    assert run.out.startswith("[holdfast-demo]")  # the pieces before the error were shown...
    assert "[degraded: the reply broke off:" in run.err and "failed mid-stream" in run.err
    exported = holdfast("conversations", "export", conversation_of(run), "--format", "json")
    saved = json.loads(exported.out)["messages"][-1]
    assert saved["content"] == run.out.removesuffix("\n")
    assert saved["metadata"]["interrupted"] is True  # ...and kept, marked
