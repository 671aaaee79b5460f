"""``holdfast chat MESSAGE``: one turn, headless.

The answer goes to stdout; tool calls, retries, notices, degraded notices, token usage and the
conversation id go to stderr, so ``holdfast chat "..." > answer.txt`` keeps only the answer.
``--json`` writes every turn event, and every retry of a call the turn made, as one JSON line
on stdout, each with ``type`` and ``conversation_id``. ``--retry`` resends the conversation's
last user message (``--conversation`` names it) without saving it again: what the degraded
notice tells the user to run when the model was down. A model that has not answered
:data:`WAIT_NOTICE_SECONDS` after being asked gets one ``[waiting for the model at URL…]`` line
on stderr (the URL with any credentials masked; not with ``--json``).

``@path`` in the message attaches that file from the working directory
(:mod:`runtime.context.attachments`): stderr says ``[attached PATH: N tokens]`` (and how much of
it was sent when it was cut to fit). A binary file or a path outside the working directory is
refused before anything is sent (exit 2, one line naming the file); a mention that names no file
is sent as text, with a note on stderr.

Exit 1 when the turn failed: the model gave no answer (down, a content filter, an empty
answer after thinking); a refused or failing tool is not a failure: the model answers it. A
reply cut at the output limit is an answer (exit 0) marked "cut off", with a notice.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runtime.cli.base import EXIT_FAILED, EXIT_OK, usage_error, with_runtime, write_json
from runtime.context.attachments import Attachment, AttachmentRefused, resolve_attachments
from runtime.core.events import (
    AssistantSaved,
    Degraded,
    Event,
    PromptBuilt,
    ReasoningDelta,
    RetryScheduled,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    TurnFailed,
    TurnFinished,
    TurnNotice,
)
from runtime.core.figures import ReplyFigures, figures_line
from runtime.core.safe_text import clean

if TYPE_CHECKING:
    from runtime.host.runtime import Runtime

#: Characters of a new conversation's title taken from the first message.
TITLE_CHARS = 60
#: Characters of a tool's output echoed on stderr.
TOOL_OUTPUT_CHARS = 200
#: Seconds the model may be silent after a request (the prompt built, or tool results sent)
#: before ``[waiting for the model at URL…]`` is printed on stderr, at most once per turn and
#: not with --json: a hung endpoint otherwise leaves the terminal silent for minutes.
WAIT_NOTICE_SECONDS = 5.0
#: Turn events after which the model is being asked (the waiting clock starts).
ASKED = (PromptBuilt, ToolCallFinished)
#: Turn events that show the model (or the turn) has answered (the waiting clock stops).
ANSWERED = (TextDelta, ReasoningDelta, ToolCallStarted, AssistantSaved, TurnFailed, TurnFinished)


def retry_line(event: RetryScheduled) -> str:
    """The stderr line for one retry: ``[retry 2/5 in 3.1 s: <what failed>]``, where 2 is the
    attempt about to be made and 5 the attempts allowed (``[resilience.<service>].max_attempts``)."""
    of = f"/{event.max_attempts}" if event.max_attempts else ""
    return f"[retry {event.attempt + 1}{of} in {event.delay:.1f} s: {clean(event.error)}]\n"


def usage_line(event: TurnFinished) -> str:
    """The stderr line for a turn's tokens, saying whether the endpoint reported them or they
    were estimated here (``usage_source``); "" when no model call was made."""
    usage = event.usage
    if event.usage_source == "none" or not usage:
        return ""
    thinking = usage.get("reasoning_tokens") or 0
    of_which = f", {thinking} of them thinking" if thinking else ""
    how = {"reported": "reported by the endpoint", "estimated": "estimated", "mixed": "partly estimated"}
    return (
        f"[tokens: {usage.get('prompt_tokens', 0)} prompt + {usage.get('completion_tokens', 0)} completion"
        f"{of_which} ({how.get(event.usage_source, event.usage_source)})]\n"
    )


def chat(
    ctx: typer.Context,
    message: Annotated[
        str | None,
        typer.Argument(metavar="MESSAGE", help="The message to send (not with --retry).", show_default=False),
    ] = None,
    conversation: Annotated[
        str | None, typer.Option("--conversation", metavar="ID", help="Continue this conversation.")
    ] = None,
    new: Annotated[
        bool, typer.Option("--new", help="Start a new conversation (the default without --conversation).")
    ] = False,
    retry: Annotated[
        bool,
        typer.Option("--retry", help="Resend the last message of --conversation (e.g. after the model was down)."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the event stream as JSON lines.")] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help='Allow tools whose permission is "ask" (refused otherwise).')
    ] = False,
) -> int:
    """Send one message (or resend the last one with --retry) and stream the answer."""
    if retry:
        if message is not None:
            usage_error(ctx, "--retry resends the conversation's last message: give no MESSAGE")
        if not conversation:
            usage_error(ctx, "--retry needs --conversation ID (the conversation whose last message to resend)")
        if new:
            usage_error(ctx, "--retry and --new cannot be used together")
    elif message is None or not message.strip():
        usage_error(ctx, "the message is empty")
    if new and conversation:
        usage_error(ctx, "--new and --conversation cannot be used together")
    attachments: tuple[Attachment, ...] = ()
    if message is not None:
        try:
            resolution = resolve_attachments(message, Path.cwd())
        except AttachmentRefused as exc:
            usage_error(ctx, f"not sent: {clean(exc.message)}")
        attachments = resolution.attachments
        for note in resolution.notices:
            print(f"[{clean(note)}]", file=sys.stderr)

    async def body(rt: Runtime) -> int:
        return await _turn(rt, message, conversation, as_json=as_json, yes=yes, attachments=attachments)

    return with_runtime(ctx, body)


async def _turn(
    rt: Runtime,
    message: str | None,
    conversation: str | None,
    *,
    as_json: bool,
    yes: bool,
    attachments: tuple[Attachment, ...] = (),
) -> int:
    out, err = sys.stdout, sys.stderr
    if message is None:
        assert conversation is not None  # checked by chat(): --retry needs --conversation
        conv = conversation
    else:
        conv = conversation or await rt.agent.new_conversation(" ".join(message.split())[:TITLE_CHARS])

    async def ask(name: str, arguments: dict[str, Any]) -> str:
        return "once" if yes else "deny"

    def on_bus(event: Event) -> None:
        # Retries happen inside a call, before any turn event says so: minutes of silence
        # otherwise while a hung endpoint is retried.
        if not isinstance(event, RetryScheduled):
            return
        if as_json:
            write_json({**event.to_dict(), "conversation_id": conv})
        else:
            err.write(retry_line(event))
            err.flush()

    waiting: asyncio.TimerHandle | None = None
    said_waiting = False

    def say_waiting() -> None:
        nonlocal said_waiting
        said_waiting = True
        err.write(f"[waiting for the model at {rt.llm.endpoint}…]\n")
        err.flush()

    stop_listening = rt.bus.add_listener(on_bus)
    failed = False
    resend = False
    thinking = False
    text_step = 0  # the step whose text was printed last
    line_open = False  # printed text does not end with a newline
    notices: list[TurnNotice] = []
    finished: TurnFinished | None = None
    figures: ReplyFigures | None = None
    turn = (
        rt.agent.run_turn(conv, message, ask_permission=ask, attachments=attachments)
        if message is not None
        else rt.agent.retry_turn(conv, ask_permission=ask)
    )
    try:
        async for event in turn:
            if isinstance(event, ASKED) and waiting is None and not (as_json or said_waiting):
                waiting = asyncio.get_running_loop().call_later(WAIT_NOTICE_SECONDS, say_waiting)
            elif isinstance(event, ANSWERED) and waiting is not None:
                waiting.cancel()
                waiting = None
            if isinstance(event, TurnFailed):
                failed = True
                resend = resend or event.retryable
            if isinstance(event, TurnFinished):
                finished = event
            if isinstance(event, PromptBuilt) and event.step == 1 and not as_json:
                for figure in event.report.attachments:
                    cut = f" of {figure.total_tokens:,}, cut to fit the budget" if figure.truncated else ""
                    err.write(f"[attached {clean(figure.path)}: {figure.tokens:,} tokens{cut}]\n")
            if isinstance(event, AssistantSaved) and event.figures is not None:
                figures = ReplyFigures.from_dict(event.figures)
            if as_json:
                write_json(event.to_dict())
            elif isinstance(event, TextDelta):
                if event.step != text_step and line_open:
                    out.write("\n")  # a step's words before its tool calls, then the answer: two lines
                text_step = event.step
                text = clean(event.text)
                if text:
                    line_open = not text.endswith("\n")
                out.write(text)
                out.flush()
            elif isinstance(event, ReasoningDelta):
                if not thinking:
                    thinking = True
                    err.write("[thinking…]\n")
                    err.flush()
            elif isinstance(event, ToolCallStarted):
                err.write(f"[tool {event.name} {json.dumps(event.arguments)}]\n")
            elif isinstance(event, ToolCallFinished):
                err.write(f"[tool {event.name}: {event.status}] {clean(event.output[:TOOL_OUTPUT_CHARS])}\n")
            elif isinstance(event, Degraded):
                err.write(f"[degraded: {clean(event.reason)}]\n")
            elif isinstance(event, TurnNotice):
                notices.append(event)
            elif isinstance(event, AssistantSaved) and event.source not in ("llm", "cache"):
                # A degraded notice or fallback answer was not streamed: print it whole.
                out.write(clean(event.content))
            elif isinstance(event, TurnFailed):
                err.write(f"[turn failed: {clean(event.error)}]\n")
    finally:
        stop_listening()
        if waiting is not None:
            waiting.cancel()
    if not as_json:
        out.write("\n")
        for notice in notices:
            hint = f'; to go on: holdfast chat --conversation {conv} "continue"' if notice.topic == "cut_off" else ""
            err.write(f"[notice: {clean(notice.message)}{hint}]\n")
        if resend:
            err.write(f"[resend with: holdfast chat --retry --conversation {conv}]\n")
        if finished is not None:
            err.write(usage_line(finished))
        if figures is not None:
            err.write(f"[reply: {figures_line(figures)}]\n")
        err.write(f"[conversation {conv}]\n")
    await rt.agent.wait_background()
    return EXIT_FAILED if failed else EXIT_OK


def register(root: typer.Typer) -> None:
    """Add ``chat`` to the root command."""
    root.command("chat")(chat)
