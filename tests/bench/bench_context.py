"""Benchmark: build_prompt cost versus conversation length, beside the spec's algorithm, and
the token error of the spec's len/4 estimate versus tiktoken.

Run: .venv/bin/python -m pytest tests/bench/bench_context.py -o addopts="" -s
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import time
from typing import Any

import pytest

from runtime.config import ContextConfig
from runtime.context import ContextWindowManager, TokenCounter, build_prompt
from runtime.core.messages import ChatMessage, ToolCall
from tests.support.context import MemoryHistory

pytestmark = pytest.mark.bench

SYSTEM = "You are Holdfast, a helpful assistant in a terminal. Answer concisely."
SIZES = (1_000, 10_000, 100_000)
WINDOWS = {"8k": 8_192, "128k": 128_000}
RUNS = int(os.environ.get("BENCH_RUNS", "100"))

PROSE = (
    "The committee met on Tuesday to review the budget for the coming year. After a long "
    "discussion about priorities, they agreed to fund the library renovation first and to "
    "revisit the transport proposal in the spring, once the survey results are in. "
)
CODE = (
    "def merge(a: list[int], b: list[int]) -> list[int]:\n    out, i, j = [], 0, 0\n"
    "    while i < len(a) and j < len(b):\n        if a[i] <= b[j]:\n            out.append(a[i]); i += 1\n"
    "        else:\n            out.append(b[j]); j += 1\n    return out + a[i:] + b[j:]\n"
)
JSON_TEXT = json.dumps(
    {
        "id": 4711,
        "items": [{"sku": "A-17", "qty": 3, "price": 9.99}, {"sku": "B-02", "qty": 1, "price": 129.0}],
        "customer": {"name": "Ana", "tags": ["vip", "eu"]},
        "paid": True,
    }
)
CJK = "今日は東京で会議があります。明日は大阪に行く予定です。天気が良ければ散歩もしたいと思います。"
EMOJI = "🚀🔥🙂👍🏽🎉 ✅❌ 🌧️☀️ 🧪🧬 👩‍💻👨‍👩‍👧"
CORPUS = {
    "English prose": PROSE * 4,
    "Python code": CODE * 3,
    "JSON": JSON_TEXT * 3,
    "CJK": CJK * 4,
    "emoji": EMOJI * 6,
}


def make_history(n: int, counter: TokenCounter) -> list[ChatMessage]:
    """A mixed conversation: chat turns and tool turns, counts cached as the store saves them."""
    out: list[ChatMessage] = []
    texts = list(CORPUS.values())
    turn = 0
    while len(out) < n:
        body = texts[turn % len(texts)][: 80 + (turn * 37) % 400]
        if turn % 5 == 0:
            call = ToolCall(id=f"call_{turn}", name="search", arguments=json.dumps({"q": f"item {turn}"}))
            msgs = [
                ChatMessage(role="user", content=f"find {turn}: {body}"),
                ChatMessage(role="assistant", content="", tool_calls=(call,)),
                ChatMessage(role="tool", content=JSON_TEXT * (1 + turn % 8), tool_call_id=call.id),
                ChatMessage(role="assistant", content=f"found {turn}. {body[:60]}"),
            ]
        else:
            msgs = [
                ChatMessage(role="user", content=f"{turn}: {body}"),
                ChatMessage(role="assistant", content=f"answer {turn}: {body[::-1]}"),
            ]
        out.extend(msgs)
        turn += 1
    return [counter.with_count(m).with_updates(seq=i) for i, m in enumerate(out[:n])]


def spec_messages_for_prompt(
    messages: list[dict[str, Any]], system_prompt: str, max_tokens: int
) -> list[dict[str, Any]]:
    """The spec's get_messages_for_prompt loop: len/4 estimates, insert at the front."""
    out = [{"role": "system", "content": system_prompt}]
    total = len(system_prompt) // 4
    for message in reversed(messages):
        tokens = len(message["content"]) // 4
        if total + tokens > max_tokens:
            break
        out.insert(1, {"role": message["role"], "content": message["content"]})
        total += tokens
    return out


def timed(fn: Any, runs: int = RUNS) -> tuple[float, float]:
    fn()  # warm caches (counts, previews) as a long-running session would have them
    gc.collect()  # garbage from building the test data is not the measured call's cost
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


@pytest.mark.timeout(900)
def test_bench_build_prompt_versus_spec() -> None:
    counter = TokenCounter("gpt-4o-mini")
    config = ContextConfig()
    print(
        f"\nbuild_prompt, ms (p50 / p95 over {RUNS} runs), encoding {counter.encoding_name}"
        f"{' (approximate)' if counter.approximate else ''}"
    )
    header = (
        f"{'messages':>9} {'window':>6} | {'ours pure':>15} {'ours via reader':>16} {'kept':>6} {'us/kept':>7} | "
        f"{'spec loop':>15} {'spec + JSON blob':>17} {'spec real tokens / budget':>26}"
    )
    print(header)
    print("-" * len(header))
    for n in SIZES:
        history = make_history(n, counter)
        store = MemoryHistory()
        store.messages["c"] = history
        wire = [{"role": m.role, "content": m.content} for m in history]
        blob = json.dumps({"messages": wire})
        for label, window in WINDOWS.items():
            budget = window - config.reserved_output_tokens
            manager = ContextWindowManager(counter, config, window, reader=store)
            built = build_prompt(counter, config, window, SYSTEM, history)
            cache: dict = {}
            ours = timed(lambda: build_prompt(counter, config, window, SYSTEM, history, preview_cache=cache))
            loop = asyncio.new_event_loop()
            via_reader = timed(lambda: loop.run_until_complete(manager.build_prompt(SYSTEM, "c")))
            loop.close()
            spec = timed(lambda: spec_messages_for_prompt(wire, SYSTEM, budget))
            spec_blob = timed(
                lambda: spec_messages_for_prompt(json.loads(blob)["messages"], SYSTEM, budget),
                runs=5 if n >= 100_000 else 20,
            )
            spec_out = spec_messages_for_prompt(wire, SYSTEM, budget)
            real = counter.count_messages(spec_out)
            assert built.report.prompt_tokens <= budget
            print(
                f"{n:>9} {label:>6} | {ours[0]:6.2f} / {ours[1]:6.2f} {via_reader[0]:7.2f} / {via_reader[1]:6.2f} "
                f"{built.report.messages_included:>6} {ours[0] * 1000 / built.report.messages_included:7.2f} | "
                f"{spec[0]:6.2f} / {spec[1]:6.2f} "
                f"{spec_blob[0]:8.2f} / {spec_blob[1]:6.2f} {real:>12} / {budget:<6} ({(real - budget) / budget:+.0%})"
            )


def test_bench_len4_token_error() -> None:
    counter = TokenCounter("gpt-4")  # cl100k: exact offline
    print("\nlen(text)//4 versus tiktoken cl100k_base")
    print(f"{'corpus':>14} {'chars':>6} {'tiktoken':>9} {'len/4':>6} {'abs err':>8} {'rel err':>8}")
    abs_errors = []
    for name, text in CORPUS.items():
        real = counter.count_text(text)
        estimate = len(text) // 4
        abs_errors.append(abs(estimate - real) / real)
        print(
            f"{name:>14} {len(text):>6} {real:>9} {estimate:>6} {abs(estimate - real):>8} "
            f"{(estimate - real) / real:>+8.0%}"
        )
    print(f"{'mean |rel err|':>14} {statistics.mean(abs_errors):>40.0%}")
