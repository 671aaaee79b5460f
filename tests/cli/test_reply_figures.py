"""Per-reply figures and cost (issue 17, item 4) through the CLI: the figures on a reply equal the
usage the server reported (the demo server, and a scripted server with exact counts), are marked
estimated when the server reports none, carry the cost the ``[pricing]`` table gives, survive in
the stored message, and ``holdfast conversations list`` (the real console script) sums them per
conversation. A bad price table is one line naming the key, exit 2."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Run, run_script
from tests.support.scripted_llm import Reply, ScriptedLLM, chunk, sse

Holdfast = Callable[..., Run]

pytestmark = [pytest.mark.redis, pytest.mark.e2e]

#: What the scripted server reports for every reply.
USAGE = {"prompt_tokens": 1234, "completion_tokens": 56, "total_tokens": 1290}
#: The price of the test's model per million tokens, and what one scripted reply costs by it.
PRICE = {"input": 2.0, "output": 8.0}
COST = (1234 * 2.0 + 56 * 8.0) / 1_000_000  # 0.002916


@pytest.fixture
def priced(tmp_path: Path) -> Path:
    """A config file pricing the test's model (``holdfast-demo``) by a glob pattern."""
    path = tmp_path / "prices.toml"
    path.write_text(
        '[pricing.models]\n"holdfast-*" = { input = 2.0, output = 8.0 }\n"holdfast-demo-large" = { input = 99, output = 99 }\n'
    )
    return path


def reported_reply(text: str = "Figures, please.") -> Reply:
    return sse(chunk({"role": "assistant", "content": text}), chunk({}, "stop"), chunk(None, usage=USAGE))


def quiet_reply(text: str = "No usage from me.") -> Reply:
    return sse(chunk({"role": "assistant", "content": text}), chunk({}, "stop"))


def events_of(run: Run, kind: str) -> list[dict[str, Any]]:
    assert run.code == 0, run.err
    return [e for e in run.json_lines() if e.get("type") == kind]


def test_figures_equal_the_demo_servers_reported_usage(holdfast: Holdfast) -> None:
    run = holdfast("chat", "--json", "hello there")
    (saved,) = events_of(run, "AssistantSaved")
    (finished,) = events_of(run, "TurnFinished")
    figures = saved["figures"]
    assert finished["usage_source"] == "reported"
    assert (figures["prompt_tokens"], figures["completion_tokens"], figures["estimated"]) == (
        finished["usage"]["prompt_tokens"],
        finished["usage"]["completion_tokens"],
        False,
    )
    assert figures["model"] == "holdfast-demo" and figures["cost"] is None  # no price for it here
    assert 0 < figures["ttft_ms"] <= figures["total_ms"]
    assert figures["tokens_per_second"] is None or figures["tokens_per_second"] > 0


def test_figures_and_cost_follow_the_reported_usage_and_the_price(
    holdfast: Holdfast, scripted: Callable[[list[Reply]], ScriptedLLM], priced: Path
) -> None:
    server = scripted([reported_reply()])
    run = holdfast("--base-url", server.url, "--config", str(priced), "chat", "--json", "hello there")
    (saved,) = events_of(run, "AssistantSaved")
    figures = saved["figures"]
    assert (figures["prompt_tokens"], figures["completion_tokens"], figures["estimated"]) == (1234, 56, False)
    # "holdfast-*" matches; the longer "holdfast-demo-large" does not match this model.
    assert figures["cost"] == pytest.approx(COST) and figures["currency"] == "USD"

    plain = holdfast("--base-url", server.url, "--config", str(priced), "chat", "hello again")
    assert plain.code == 0, plain.err
    line = re.search(r"^\[reply: (.*)\]$", plain.err, re.M)
    assert line, plain.err
    assert line.group(1).startswith("1.2k in · 56 out · first ")
    assert line.group(1).endswith(" · $0.0029")


def test_counts_the_server_did_not_report_are_marked_estimated(
    holdfast: Holdfast, scripted: Callable[[list[Reply]], ScriptedLLM], priced: Path
) -> None:
    server = scripted([quiet_reply()])
    run = holdfast("--base-url", server.url, "--config", str(priced), "chat", "--json", "hello there")
    (saved,) = events_of(run, "AssistantSaved")
    (finished,) = events_of(run, "TurnFinished")
    figures = saved["figures"]
    assert finished["usage_source"] == "estimated" and figures["estimated"] is True
    assert (figures["prompt_tokens"], figures["completion_tokens"]) == (
        finished["usage"]["prompt_tokens"],
        finished["usage"]["completion_tokens"],
    )
    assert figures["completion_tokens"] > 0
    expected = (figures["prompt_tokens"] * 2.0 + figures["completion_tokens"] * 8.0) / 1_000_000
    assert figures["cost"] == pytest.approx(expected)

    plain = holdfast("--base-url", server.url, "chat", "hello again")
    assert re.search(r"^\[reply: \d+ in · \d+ out est\. · ", plain.err, re.M), plain.err


def test_the_console_scripts_list_sums_each_conversations_replies(
    script_env: dict[str, str], scripted: Callable[[list[Reply]], ScriptedLLM], priced: Path
) -> None:
    server = scripted([reported_reply()])
    env = {**script_env, "HOLDFAST_LLM__BASE_URL": server.url}
    first = run_script("--config", str(priced), "chat", "one", env=env)
    assert first.code == 0, first.err
    conv = re.search(r"\[conversation (conv_\w+)\]", first.err)
    assert conv, first.err
    again = run_script("--config", str(priced), "chat", "--conversation", conv.group(1), "two", env=env)
    assert again.code == 0, again.err
    other = run_script("--config", str(priced), "chat", "three", env=env)
    assert other.code == 0, other.err

    listed = run_script("conversations", "list", env=env)
    assert listed.code == 0, listed.err
    totals = {row["id"]: row["totals"] for row in listed.json_lines()}
    assert totals[conv.group(1)]["replies"] == 2
    assert (totals[conv.group(1)]["prompt_tokens"], totals[conv.group(1)]["completion_tokens"]) == (2 * 1234, 2 * 56)
    assert totals[conv.group(1)]["cost"] == pytest.approx(2 * COST)
    (lone,) = [t for cid, t in totals.items() if cid != conv.group(1)]
    assert (lone["replies"], lone["cost"]) == (1, pytest.approx(COST))

    # The figures are stored with the reply: reopening (exporting) the conversation finds them.
    exported = run_script("conversations", "export", conv.group(1), "--format", "json", env=env)
    assert exported.code == 0, exported.err
    stored = [m for m in json.loads(exported.out)["messages"] if m["role"] == "assistant"]
    assert [(m["metadata"]["figures"]["prompt_tokens"], m["metadata"]["figures"]["cost"]) for m in stored] == [
        (1234, pytest.approx(COST)),
        (1234, pytest.approx(COST)),
    ]


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ('[pricing.models]\n"gpt-4o*" = { input = 2.5, output = -1 }\n', "[pricing.models.gpt-4o*].output must be"),
        ('[pricing.models]\n"gpt-4o*" = { input = 2.5 }\n', "[pricing.models.gpt-4o*] needs output"),
        ('[pricing.models]\n"gpt-4o*" = { input = "cheap", output = 1 }\n', "[pricing.models.gpt-4o*].input must be"),
        ('[pricing]\ncurrency = "dollars"\n', "[pricing].currency must be a 3-letter currency code"),
        ('[pricing.models]\n"x" = { input = 1, output = 1, per = 1000 }\n', "unknown key [pricing.models.x].per"),
    ],
)
def test_a_bad_price_table_is_one_line_naming_the_key(
    script_env: dict[str, str], tmp_path: Path, table: str, says: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(table)
    run = run_script("--config", str(path), "conversations", "list", env=script_env)
    assert run.code == 2
    assert run.err.count("\n") == 1 and "Traceback" not in run.err
    assert run.err.startswith(f"holdfast: {path}: ") and says in run.err, run.err
