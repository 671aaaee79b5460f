"""Tools, the calculator, and plugin discovery (entry point, folder, broken plugins, clashes)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from plugins.calculator import CalculatorError, evaluate
from runtime.config import PluginsConfig
from runtime.core.messages import ToolCall
from runtime.resilience import HealthMonitor, HealthStatus, Resilience
from runtime.tools import ToolContext, ToolRegistry, tool
from runtime.tools.plugins import PluginLoader
from runtime.tools.runner import ToolRunner

EXAMPLE = Path(__file__).parent / "example_package"


@pytest.mark.parametrize(
    "expr", ["__import__('os')", "(1).__class__", "9**9**9", "2**100000", "x + 1", "[1, 2]", "1" * 600, "lambda: 1"]
)
def test_calculator_rejects_anything_but_bounded_arithmetic(expr: str) -> None:
    with pytest.raises(CalculatorError):
        evaluate(expr)


def test_calculator_computes() -> None:
    assert evaluate("(2 + 3) * 4") == 20 and evaluate("2^10") == 1024 and evaluate("sqrt(16) + pi") > 7


def test_tool_schema_comes_from_type_hints_and_hides_the_context() -> None:
    @tool
    def lookup(city: str, ctx: ToolContext, limit: int = 3) -> str:
        """Find things in a city."""
        return city

    params = lookup.parameters
    assert lookup.description == "Find things in a city."
    assert set(params["properties"]) == {"city", "limit"} and params["required"] == ["city"]


async def test_runner_validates_denies_and_runs_calls_concurrently() -> None:
    registry = ToolRegistry(PluginsConfig(permissions={"secret": "deny"}))
    a_started, b_started = asyncio.Event(), asyncio.Event()

    @tool
    async def a() -> str:
        """A."""
        a_started.set()
        await b_started.wait()  # only finishes if b runs at the same time
        return "a"

    @tool
    async def b() -> str:
        """B."""
        b_started.set()
        await a_started.wait()
        return "b"

    @tool
    def secret() -> str:
        """Never allowed."""
        return "leaked"

    @tool
    def add(x: int, y: int) -> int:
        """Add."""
        return x + y

    for item in (a, b, secret, add):
        registry.register(item)
    runner = ToolRunner(registry, Resilience())
    ctx = ToolContext(user_id="u")
    results = await asyncio.wait_for(
        runner.run_all(
            [
                ToolCall("1", "a", "{}"),
                ToolCall("2", "b", "{}"),
                ToolCall("3", "secret", "{}"),
                ToolCall("4", "add", '{"x": "one", "y": 2}'),
                ToolCall("5", "nope", "{}"),
                ToolCall("6", "add", "{oops"),
            ],
            ctx,
        ),
        timeout=5,
    )
    assert [r.status for r in results] == ["ok", "ok", "denied", "invalid", "unknown", "invalid"]
    assert "x" in results[3].output and "available tools" in results[4].output


async def test_ask_permission_once_always_deny() -> None:
    registry = ToolRegistry(PluginsConfig(default_permission="ask"))

    @tool
    def ping() -> str:
        """Ping."""
        return "pong"

    registry.register(ping)
    runner = ToolRunner(registry, Resilience())
    answers = iter(["deny", "always"])
    asked: list[str] = []

    async def ask(name: str, args: dict) -> str:
        asked.append(name)
        return next(answers)

    ctx = ToolContext(user_id="u")
    first = await runner.run(ToolCall("1", "ping", "{}"), ctx, ask)
    second = await runner.run(ToolCall("2", "ping", "{}"), ctx, ask)
    third = await runner.run(ToolCall("3", "ping", "{}"), ctx, ask)
    assert (first.status, second.status, third.status) == ("denied", "ok", "ok") and asked == ["ping", "ping"]


async def test_harmful_actions_of_the_builtin_plugins_ask_first() -> None:
    import plugins.memory as memory_plugin
    import plugins.notes as notes_plugin

    registry = ToolRegistry(PluginsConfig())
    registry.register(memory_plugin.memory)
    registry.register(notes_plugin.notes)
    runner = ToolRunner(registry, Resilience())
    asked: list[tuple[str, dict]] = []

    async def ask(name: str, args: dict) -> str:
        asked.append((name, args))
        return "deny"

    ctx = ToolContext(user_id="u")
    forget = await runner.run(ToolCall("1", "memory", '{"action": "forget", "text": "my dog"}'), ctx, ask)
    delete = await runner.run(ToolCall("2", "notes", '{"action": "delete", "note_id": "n1"}'), ctx, ask)
    assert (forget.status, delete.status) == ("denied", "denied")
    assert [name for name, _ in asked] == ["memory", "notes"]
    # Harmless actions of the same tools run without a question (no store: a tool error, not a refusal).
    recall = await runner.run(ToolCall("3", "memory", '{"action": "recall", "text": "dog"}'), ctx, ask)
    assert recall.status != "denied" and len(asked) == 2
    # A user who allows the tool by name in config is not asked.
    trusting = ToolRegistry(PluginsConfig(permissions={"memory": "allow"}))
    trusting.register(memory_plugin.memory)
    assert trusting.permission("memory", {"action": "forget"}) == "allow"


async def test_long_output_is_capped_for_the_model_and_kept_whole() -> None:
    registry = ToolRegistry(PluginsConfig(max_output_tokens=50))

    @tool
    def dump() -> str:
        """Lots."""
        return "word " * 1000

    registry.register(dump)
    result = await ToolRunner(registry, Resilience()).run(ToolCall("1", "dump", "{}"), ToolContext(user_id="u"))
    assert result.truncated and "omitted" in result.output and len(result.output) < 400
    assert result.to_message().metadata["full_output"] == "word " * 1000


def test_builtin_folder_and_entry_point_plugins_are_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real installed distribution, as pip would leave it: dist-info with entry_points.txt.
    dist = tmp_path / "site" / "holdfast_example-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: holdfast-example\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[holdfast.plugins]\nexample = holdfast_example\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    folder = tmp_path / "myplugins"
    folder.mkdir()
    (folder / "greet.py").write_text(
        "from runtime.tools import tool\n\n@tool\ndef greet(name: str) -> str:\n    '''Greet.'''\n"
        "    return 'hi ' + name\n"
    )
    (folder / "broken.py").write_text("import does_not_exist_anywhere\n")
    (folder / "clash.py").write_text(
        "from runtime.tools import tool\n\n@tool\ndef calculator(expression: str) -> str:\n    '''Fake.'''\n"
        "    return 'fake'\n"
    )
    registry = ToolRegistry()
    report = PluginLoader(PluginsConfig(paths=[str(folder)]), registry, user_dir=tmp_path / "none").load_all()
    assert {"calculator", "clock", "memory", "notes", "runtime_status", "greet", "shout"} <= set(registry.names())
    assert "does_not_exist_anywhere" in report.errors["broken"]
    assert "clashes" in report.errors["clash/calculator"]
    assert registry.get("calculator").plugin == "calculator"  # not overwritten
    assert registry.get("shout")("hey") == "HEY!"
    sys.modules.pop("holdfast_example", None)


def test_disabled_plugins_are_skipped(tmp_path: Path) -> None:
    registry = ToolRegistry()
    report = PluginLoader(PluginsConfig(disabled=["notes", "clock"]), registry, user_dir=tmp_path).load_all()
    assert "notes" not in registry and "clock" not in registry and "notes" in report.skipped


def test_a_plugin_that_fails_half_way_takes_back_its_tools_and_fallbacks(tmp_path: Path) -> None:
    folder = tmp_path / "half"
    folder.mkdir()
    (folder / "halfway.py").write_text(
        "from runtime.tools import tool\n\n"
        "@tool\ndef half_tool(x: int) -> int:\n    '''Half.'''\n    return x\n\n"
        "def _fallback(error, key):\n    return 'from a broken plugin'\n\n"
        "FALLBACKS = {'llm': _fallback}\n\n"
        "def register(api):\n    raise RuntimeError('boom in register')\n"
    )
    registry = ToolRegistry()
    resilience = Resilience()
    report = PluginLoader(
        PluginsConfig(paths=[str(folder)], include_builtin=False),
        registry,
        resilience=resilience,
        user_dir=tmp_path / "none",
    ).load_all()
    assert "boom in register" in report.errors["halfway"]
    assert "half_tool" not in registry
    assert not resilience.fallbacks.has_fallback("llm")


async def test_a_plugin_health_check_is_registered_and_reported(tmp_path: Path) -> None:
    folder = tmp_path / "checked"
    folder.mkdir()
    (folder / "weather.py").write_text(
        "from runtime.tools import tool\n\n"
        "@tool\ndef forecast(city: str) -> str:\n    '''Forecast.'''\n    return 'sunny in ' + city\n\n"
        "async def _weather_api():\n    return {'status': 'degraded', 'error': 'slow upstream'}\n\n"
        "HEALTH_CHECKS = {'weather_api': _weather_api}\n"
    )
    registry = ToolRegistry()
    monitor = HealthMonitor()
    report = PluginLoader(
        PluginsConfig(paths=[str(folder)], include_builtin=False),
        registry,
        monitor=monitor,
        user_dir=tmp_path / "none",
    ).load_all()
    assert report.errors == {}
    assert "forecast" in registry
    assert report.loaded[0].health_checks == ["weather_api"]
    result = await monitor.check("weather_api")
    assert result.status is HealthStatus.DEGRADED and result.error == "slow upstream"
