"""Tools: user errors are not outages. ``2**5000 / 3`` in the real calculator plugin is an
``invalid`` result the model reads, and no number of such calls opens the calculator's breaker
for everyone; a tool that raises ``ValueError`` or ``OverflowError`` on its input is treated the
same way, while a tool that breaks (any other exception) still counts."""

from __future__ import annotations

import pytest

from plugins.calculator import CalculatorError, calculator, evaluate
from runtime.config import PluginsConfig
from runtime.core.messages import ToolCall
from runtime.resilience import Resilience
from runtime.tools import ToolContext, ToolRegistry, tool
from runtime.tools.runner import ToolRunner

CONTEXT = ToolContext(user_id="alice")


def _runner(*tools: object) -> tuple[ToolRunner, Resilience]:
    registry = ToolRegistry(PluginsConfig(default_permission="allow"))
    for item in tools:
        registry.register(item)  # type: ignore[arg-type]
    resilience = Resilience()
    return ToolRunner(registry, resilience), resilience


@pytest.mark.parametrize("expression", ["2**5000 / 3", "2**5000 * 1.0", "1e308 * 10", "-(2**5000) / 7"])
def test_an_overflowing_expression_is_a_calculator_error(expression: str) -> None:
    with pytest.raises(CalculatorError, match="too large"):
        evaluate(expression)


async def test_twenty_overflowing_calls_are_invalid_results_and_the_breaker_stays_closed() -> None:
    runner, resilience = _runner(calculator)
    for n in range(20):
        result = await runner.run(ToolCall(str(n), "calculator", '{"expression": "2**5000 / 3"}'), CONTEXT)
        assert result.status == "invalid"
        assert result.output == "Error: the result is too large for a floating-point number"
    snapshot = resilience.guard("tool:calculator").breaker.snapshot()
    assert snapshot.state == "closed" and snapshot.failures_in_window == 0
    ok = await runner.run(ToolCall("ok", "calculator", '{"expression": "2**10 / 4"}'), CONTEXT)
    assert (ok.status, ok.output) == ("ok", "2**10 / 4 = 256")


async def test_a_plugins_value_and_arithmetic_errors_are_its_inputs_fault() -> None:
    @tool
    def parse_port(text: str) -> int:
        """Parse a TCP port."""
        port = int(text)  # ValueError for "eighty"
        return 65536 // (port - port) if port == 0 else port  # ZeroDivisionError for "0"

    runner, resilience = _runner(parse_port)
    for n, text in enumerate(["eighty", "0"] * 10):
        result = await runner.run(ToolCall(str(n), "parse_port", f'{{"text": "{text}"}}'), CONTEXT)
        assert result.status == "invalid" and "refused the input" in result.output
    assert resilience.guard("tool:parse_port").breaker.snapshot().state == "closed"


async def test_a_tool_that_breaks_still_counts_against_its_breaker() -> None:
    @tool
    def broken() -> str:
        """Always crashes."""
        raise RuntimeError("the plugin's own bug")

    runner, resilience = _runner(broken)
    results = [await runner.run(ToolCall(str(n), "broken", "{}"), CONTEXT) for n in range(12)]
    assert results[0].status == "error" and "the plugin's own bug" in results[0].output
    assert results[-1].status == "unavailable"  # the breaker opened: the failure is the tool's
    assert resilience.guard("tool:broken").breaker.snapshot().state == "open"
