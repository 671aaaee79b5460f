"""What each slash command does, against the runtime. Runs inside a worker, never on the UI thread.

Every handler reports through the chat log (a marked notice) or a notification; a runtime
error becomes a one-line notice, never an exception that reaches the app.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from app.clipboard import copy_text
from app.commands import COMMANDS, CommandError, Invocation, help_lines
from app.safe_text import plural
from app.surface import ChatSurface
from runtime.core.errors import AppError, InternalError, NotFoundError, ValidationError, describe

if TYPE_CHECKING:
    from app.widgets.notice import NoticeKind
    from runtime.host.facade import ExportFormat, RuntimeFacade

log = logging.getLogger(__name__)

#: Characters of a memory id ``/memory`` shows (``/forget`` takes any unique prefix).
SHORT_ID = 8

#: What ``/continue`` sends: the model's last reply was cut at the output limit.
CONTINUE_MESSAGE = "Continue exactly where your last reply was cut off."


class CommandHandlers:
    """Runs parsed slash commands (``cmd_<name>``) against ``app`` and its runtime facade."""

    def __init__(self, app: ChatSurface) -> None:
        self.app = app

    @property
    def rt(self) -> RuntimeFacade:
        """The started runtime (InternalError before boot built it: :meth:`run` checks first)."""
        rt = self.app.rt
        if rt is None:
            raise InternalError("the runtime is still starting")
        return rt

    async def say(self, text: str, kind: NoticeKind = "command") -> None:
        """Show ``text`` as a notice of ``kind`` in the chat log."""
        await self.app.chat_log.notice(text, kind)

    async def run(self, inv: Invocation) -> None:
        """Run one command; its errors become one-line notices (hint or error), never exceptions."""
        handler: Callable[[Invocation], Awaitable[None]] = getattr(self, f"cmd_{inv.name}")
        needs_runtime = inv.name not in ("help", "copy")
        if needs_runtime and (self.app.rt is None or not self.app.rt.started):
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
        if self.app.conversation_id is None:
            raise CommandError("no conversation is open yet")
        await self.rt.set_system_prompt(self.app.conversation_id, prompt)
        await self.say(f"system prompt set for this conversation: {prompt}")

    async def cmd_model(self, inv: Invocation) -> None:
        """``/model``: the picker over the endpoint's models; ``/model NAME``: that model for this
        conversation, when the endpoint lists it (else a did-you-mean, nothing changed)."""
        if not inv.args:
            await self.app.pick_model()
            return
        if self.app.conversation_id is None:
            raise CommandError("no conversation is open yet")
        name = inv.args[0]
        models = await self.rt.list_models()
        if models and name not in models:
            close = difflib.get_close_matches(name, models, n=3, cutoff=0.5)
            hint = f"did you mean {' or '.join(close)}?" if close else f"available: {', '.join(models)}"
            raise CommandError(f"unknown model {name!r}, not switched; {hint} (/model lists them)")
        await self.app.use_model(name)

    async def cmd_retry(self, inv: Invocation) -> None:
        await self.app.start_turn(None, retry=True)

    async def cmd_edit(self, inv: Invocation) -> None:
        """``/edit [SEQ|cancel]``: a user message back in the composer; sending it branches (issue 17)."""
        options = inv.options or {}
        if options.get("cancel"):
            await self.say("edit dropped" if self.app.cancel_edit() else "no edit is pending", "hint")
            return
        seq = options.get("seq")
        await self.app.edit_message(seq if isinstance(seq, int) else None)

    async def cmd_continue(self, inv: Invocation) -> None:
        """A reply cut off at the output limit: ask for the rest, as a message of the user's."""
        if self.app.conversation_id is None:
            raise CommandError("nothing to continue yet")
        await self.app.send(CONTINUE_MESSAGE)

    async def cmd_summarize(self, inv: Invocation) -> None:
        conv_id = self.app.conversation_id
        if conv_id is None:
            raise CommandError("nothing to summarise yet")
        force = bool((inv.options or {}).get("force"))
        result = await self.rt.summarize(conv_id, force=force)
        if result is None:
            await self.say(
                "history is below the summarise threshold: nothing to do (/summarize --force does it anyway)"
            )
            return
        if result.status == "nothing_to_evict":
            await self.say("nothing to summarise yet: the history is a single turn")
            return
        if result.status == "summarized":
            await self.app.open_conversation(conv_id)  # redrawn first: that clears the log
        await self.say(
            f"summary: {result.status} ({result.history_tokens_before:,} -> "
            f"{result.history_tokens_after:,} tokens, {result.evicted} older messages summarised)"
            + (f"; {result.error}" if result.error else "")
        )

    async def cmd_export(self, inv: Invocation) -> None:
        conv_id = self.app.conversation_id
        if conv_id is None:
            raise CommandError("no conversation to export yet")
        opts = inv.options or {}
        fmt: ExportFormat = "json" if opts.get("format") == "json" else "md"
        text = await self.rt.export_conversation(conv_id, fmt)
        target = str(opts.get("path") or self.app.config.data_path / "exports" / f"{conv_id}.{fmt}")
        target = await asyncio.to_thread(_write_file, target, text)
        await self.say(f"exported {len(text):,} characters to {target}")

    async def cmd_copy(self, inv: Invocation) -> None:
        reply = self.app.chat_log.last_reply()
        if reply is None:
            raise CommandError("no reply to copy yet")
        self.app.notify("last reply: " + await copy_text(self.app, reply.text), markup=False)

    # ------------------------------------------------------------ memory and tools

    def _memory_on(self) -> RuntimeFacade:
        if not self.rt.memory_enabled:
            raise CommandError("long-term memory is disabled ([memory].enabled = false)")
        return self.rt

    async def cmd_memory(self, inv: Invocation) -> None:
        search = await self._memory_on().search_memories(inv.rest)
        # Ids shortened to SHORT_ID characters: /forget takes any unique prefix.
        lines = [
            f"{m.id[:SHORT_ID]}  {m.score:.2f}  {m.content}"
            if m.score is not None
            else f"{m.id[:SHORT_ID]}  {m.content}"
            for m in search.hits
        ]
        head = f"{plural(len(lines), 'memory', 'memories')} for {inv.rest!r}" + (
            f" (degraded: {search.reason})" if search.degraded else ""
        )
        await self.say("\n".join([head, *lines]))

    async def cmd_remember(self, inv: Invocation) -> None:
        mid = await self._memory_on().remember(inv.rest, self.app.conversation_id or "")
        await self.say(f"remembered as {mid}")

    async def cmd_forget(self, inv: Invocation) -> None:
        rt = self._memory_on()
        try:
            memory_id = await rt.find_memory(inv.args[0])
        except (NotFoundError, ValidationError) as exc:
            raise CommandError(exc.user_message()) from exc
        found = await rt.forget_memory(memory_id)
        await self.say(f"forgot {memory_id}" if found else f"no memory {memory_id}")

    async def cmd_tools(self, inv: Invocation) -> None:
        tools = self.rt.list_tools()
        lines = [f"{t.name} [{t.permission}] {t.description}" for t in tools]
        for plugin, error in self.rt.plugin_errors.items():
            lines.append(f"✖ plugin {plugin} failed to load: {error}")
        await self.say("\n".join([plural(len(tools), "tool"), *lines]))

    # ------------------------------------------------------------ resilience

    async def cmd_breakers(self, inv: Invocation) -> None:
        try:
            names = self.rt.reset_breakers([inv.args[1]] if len(inv.args) > 1 else None)
        except NotFoundError as exc:
            raise CommandError(exc.user_message()) from exc
        self.app.refresh_breakers()
        await self.say(f"reset breaker{'s' if len(names) != 1 else ''}: {', '.join(names) or 'none'}")

    async def cmd_health(self, inv: Invocation) -> None:
        report = await self.rt.check_health()
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
        if action == "kill" and inv.args[1] == "mcp":
            pid = chaos.kill_mcp(inv.args[2])
            server = inv.args[2]
            what = f"killed MCP server {server} (pid {pid})" if pid else f"MCP server {server} was not running"
            await self.say(f"{what}: it restarts by itself; a call to its tools waits for it", "degraded")
            await self.app.check_health_now()
        elif action == "kill":
            name = inv.args[1]
            pid = chaos.kill(name)
            await self.say(f"killed {name} (pid {pid}): watch the Health and Breakers panels", "degraded")
            await self.app.check_health_now()
        elif action == "start":
            name = inv.args[1]
            pid = await chaos.start(name)
            await self.say(f"started {name} again (pid {pid})")
            await self.app.check_health_now()
            self.app.schedule_recovery_probe(name)
        elif action == "faults":
            faults = await chaos.faults(**(inv.options or {}))
            active = {k: v for k, v in faults.items() if k in (inv.options or {})}
            await self.say(f"LLM faults now: {active}", "degraded")
        elif action == "quirk":
            profile = await chaos.quirk(inv.args[1])
            await self.say(f"the demo LLM now speaks like the {profile!r} profile (/chaos reset: back)", "degraded")
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
            for name in self.rt.backends():
                self.app.schedule_recovery_probe(name)


def _write_file(target: str, text: str) -> str:
    """Write ``text`` (UTF-8) to ``target`` (``~`` expanded, folders made); returns the path written."""
    path = Path(target).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


__all__ = ["COMMANDS", "CommandHandlers"]
