"""What each slash command does, against the runtime. Runs inside a worker, never on the UI thread.

Every handler reports through the chat log (a marked notice) or a notification; a runtime
error becomes a one-line notice, never an exception that reaches the app.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.commands import COMMANDS, CommandError, Invocation, help_lines
from runtime.core.errors import AppError, describe

if TYPE_CHECKING:
    from app.chat_app import HoldfastApp

log = logging.getLogger(__name__)


class CommandHandlers:
    def __init__(self, app: HoldfastApp) -> None:
        self.app = app

    @property
    def rt(self) -> Any:
        return self.app.rt

    async def say(self, text: str, kind: str = "command") -> None:
        await self.app.chat_log.notice(text, kind)  # type: ignore[arg-type]

    async def run(self, inv: Invocation) -> None:
        handler = getattr(self, f"cmd_{inv.name}")
        needs_runtime = inv.name not in ("help", "copy")
        if needs_runtime and (self.rt is None or self.rt.agent is None):
            await self.say(f"/{inv.name}: the runtime is still starting; try again in a moment", "hint")
            return
        try:
            await handler(inv)
        except CommandError as exc:
            await self.say(str(exc), "hint")
        except AppError as exc:
            await self.say(f"/{inv.name} failed: {describe(exc)}", "error")

    # ------------------------------------------------------------ conversation

    async def cmd_help(self, inv: Invocation) -> None:
        await self.say("Commands (also in the command palette, Ctrl+P):\n" + "\n".join(help_lines()))

    async def cmd_new(self, inv: Invocation) -> None:
        await self.app.start_new_conversation()

    async def cmd_system(self, inv: Invocation) -> None:
        prompt = inv.rest
        await self.rt.agent.set_system_prompt(self.app.conversation_id, prompt)
        await self.say(f"system prompt set for this conversation: {prompt}")

    async def cmd_model(self, inv: Invocation) -> None:
        models = await self.rt.llm.list_models()
        current = await self.rt.llm.model()
        if not inv.args:
            listed = ", ".join(f"{m} (current)" if m == current else m for m in models) or "none"
            await self.say(f"models: {listed}")
            return
        name = inv.args[0]
        if models and name not in models:
            raise CommandError(f"unknown model {name!r}; available: {', '.join(models)}")
        self.rt.llm.set_model(name)
        self.app.header.model = name
        await self.say(f"model switched to {name}")

    async def cmd_retry(self, inv: Invocation) -> None:
        await self.app.start_turn(None, retry=True)

    async def cmd_summarize(self, inv: Invocation) -> None:
        conv_id = self.app.conversation_id
        summarizer = getattr(self.rt.agent, "summarizer", None)
        if conv_id is None or summarizer is None:
            raise CommandError("nothing to summarise yet")
        result = await summarizer.maybe_summarize(conv_id)
        if result is None:
            await self.say("history is below the summarise threshold: nothing to do")
            return
        await self.say(
            f"summary: {result.status} ({result.history_tokens_before:,} -> "
            f"{result.history_tokens_after:,} tokens)" + (f"; {result.error}" if result.error else "")
        )
        await self.app.open_conversation(conv_id)

    async def cmd_export(self, inv: Invocation) -> None:
        conv_id = self.app.conversation_id
        if conv_id is None:
            raise CommandError("no conversation to export yet")
        opts = inv.options or {}
        fmt = opts.get("format", "md")
        text = await (self.rt.store.export_json(conv_id) if fmt == "json" else self.rt.store.export_markdown(conv_id))
        target = Path(opts.get("path") or self.rt.config.data_path / "exports" / f"{conv_id}.{fmt}").expanduser()
        await asyncio.to_thread(_write_file, target, text)
        await self.say(f"exported {len(text):,} characters to {target}")

    async def cmd_copy(self, inv: Invocation) -> None:
        reply = self.app.chat_log.last_reply()
        if reply is None:
            raise CommandError("no reply to copy yet")
        self.app.copy_to_clipboard(reply.text)
        self.app.notify("last reply copied to the clipboard (if your terminal allows it)")

    # ------------------------------------------------------------ memory and tools

    async def cmd_memory(self, inv: Invocation) -> None:
        if self.rt.memory is None:
            raise CommandError("long-term memory is disabled ([memory].enabled = false)")
        recall = await self.rt.memory.search_memories(inv.rest, self.rt.user_id)
        lines = [
            f"{m.id}  {m.score:.2f}  {m.content}" if m.score is not None else f"{m.id}  {m.content}"
            for m in recall.memories
        ]
        head = f"{len(lines)} memories for {inv.rest!r}" + (f" (degraded: {recall.reason})" if recall.degraded else "")
        await self.say("\n".join([head, *lines]))

    async def cmd_remember(self, inv: Invocation) -> None:
        if self.rt.memory is None:
            raise CommandError("long-term memory is disabled ([memory].enabled = false)")
        mid = await self.rt.memory.store_memory(self.rt.user_id, self.app.conversation_id or "", inv.rest)
        await self.say(f"remembered as {mid}")

    async def cmd_forget(self, inv: Invocation) -> None:
        if self.rt.memory is None:
            raise CommandError("long-term memory is disabled ([memory].enabled = false)")
        found = await self.rt.memory.forget(self.rt.user_id, inv.args[0])
        await self.say(f"forgot {inv.args[0]}" if found else f"no memory {inv.args[0]}")

    async def cmd_tools(self, inv: Invocation) -> None:
        lines = []
        for name in self.rt.tools.names():
            tool = self.rt.tools.get(name)
            description = (getattr(tool, "description", "") or "").splitlines()[0:1]
            lines.append(f"{name} [{self.rt.tools.permission(name)}] {description[0] if description else ''}")
        for plugin, error in self.rt.plugin_errors.items():
            lines.append(f"✖ plugin {plugin} failed to load: {error}")
        await self.say("\n".join([f"{len(self.rt.tools.names())} tools", *lines]))

    # ------------------------------------------------------------ resilience

    async def cmd_breakers(self, inv: Invocation) -> None:
        registry = self.rt.resilience.breakers
        names = [inv.args[1]] if len(inv.args) > 1 else [b.name for b in registry]
        known = {b.name for b in registry}
        for name in names:
            if name not in known:
                raise CommandError(f"no breaker {name!r}; known: {', '.join(sorted(known)) or 'none'}")
            registry.get(name).reset()
        self.app.refresh_breakers()
        await self.say(f"reset breaker{'s' if len(names) != 1 else ''}: {', '.join(names) or 'none'}")

    async def cmd_health(self, inv: Invocation) -> None:
        report = await self.rt.monitor.run_checks()
        self.app.health_panel.show_report(report)
        self.app.refresh_backend_pids()
        lines = [f"overall: {report.status.value}"]
        for name, result in report.checks.items():
            latency = f" {result.latency_ms:.0f} ms" if result.latency_ms is not None else ""
            lines.append(f"{name}: {result.status.value}{latency}" + (f" ({result.error})" if result.error else ""))
        await self.say("\n".join(lines))

    async def cmd_chaos(self, inv: Invocation) -> None:
        action = inv.args[0]
        chaos = self.rt.chaos
        if action == "kill":
            name = inv.args[1]
            pid = self.rt.backends[name].pid if name in self.rt.backends else None
            chaos.kill(name)
            await self.say(f"killed {name} (pid {pid}): watch the Health and Breakers panels", "degraded")
            await self.app.check_health_now()
        elif action == "start":
            name = inv.args[1]
            await chaos.start(name)
            pid = self.rt.backends[name].pid
            await self.say(f"started {name} again (pid {pid})")
            await self.app.check_health_now()
            self.app.schedule_recovery_probe(name)
        elif action == "faults":
            faults = await chaos.faults(**(inv.options or {}))
            active = {k: v for k, v in faults.items() if k in (inv.options or {})}
            await self.say(f"LLM faults now: {active}", "degraded")
        elif action == "memory":
            on = bool((inv.options or {}).get("on"))
            chaos.memory(on)
            self.app.refresh_breakers()
            await self.say("memory back online" if on else "memory taken offline", "info" if on else "degraded")
        elif action == "reset":
            await chaos.reset()
            self.app.refresh_breakers()
            await self.say("chaos reset: backends running, no faults, memory online")
            await self.app.check_health_now()
            for name in self.rt.backends:
                self.app.schedule_recovery_probe(name)


def _write_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


__all__ = ["COMMANDS", "CommandHandlers"]
