"""What a built prompt contains and what it cost: the budget the UI shows after every turn."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from runtime.context.attachments import AttachmentFigure
from runtime.core.errors import ValidationError

ToolsMode = Literal["native", "text", "none"]


class ContextOverflowError(ValidationError):
    """The parts that are never dropped (system prompt, tool schemas, a minimal cut of the
    newest user message) do not fit the model's window."""


@dataclass(frozen=True)
class PromptReport:
    """Tokens per section and what was kept, dropped or shortened to fit the budget."""

    model: str
    encoding: str
    #: True when counts use a stand-in encoding (the model's own is not available offline).
    approximate: bool
    context_window: int
    #: Tokens the prompt may use: the window minus ``reserved_tokens`` (and any configured cap).
    budget: int
    reserved_tokens: int
    system_tokens: int
    tools_tokens: int
    memories_tokens: int
    summary_tokens: int
    history_tokens: int
    #: Reply priming the API adds to every request.
    overhead_tokens: int
    messages_included: int
    messages_dropped: int
    memories_included: int = 0
    memories_dropped: int = 0
    summary_used: bool = False
    summary_method: str | None = None
    tools_mode: ToolsMode = "none"
    #: The newest user message was cut in the middle (its full text stays stored).
    user_message_truncated: bool = False
    omitted_tokens: int = 0
    #: Old tool outputs replaced by a preview instead of dropping their turns.
    tool_outputs_shrunk: int = 0
    #: Messages that could never be sent (orphan tool results, unanswered tool calls).
    unsendable_dropped: int = 0
    #: Tokens of the files attached to the newest user message (``@path``), as one message.
    attachments_tokens: int = 0
    #: Each attached file: its tokens as inserted, of how many, and whether it was cut.
    attachments: tuple[AttachmentFigure, ...] = ()

    @property
    def prompt_tokens(self) -> int:
        """Tokens of the whole prompt: every section plus the reply priming."""
        return (
            self.system_tokens
            + self.tools_tokens
            + self.memories_tokens
            + self.summary_tokens
            + self.history_tokens
            + self.attachments_tokens
            + self.overhead_tokens
        )

    @property
    def free_tokens(self) -> int:
        """Tokens of the budget left unused."""
        return self.budget - self.prompt_tokens

    @property
    def truncated(self) -> bool:
        """Anything shortened (user message cut, tool outputs previewed, an attachment cut)."""
        return self.user_message_truncated or self.tool_outputs_shrunk > 0 or any(a.truncated for a in self.attachments)

    def to_dict(self) -> dict[str, Any]:
        """Every field plus ``prompt_tokens``, ``free_tokens`` and ``truncated``, as a plain dict."""
        data = asdict(self)
        data.update(prompt_tokens=self.prompt_tokens, free_tokens=self.free_tokens, truncated=self.truncated)
        return data


@dataclass(frozen=True)
class BuiltPrompt:
    """The request to send: OpenAI-format ``messages``, the ``tools`` parameter (None when there
    are none or they went into the system prompt as text) and the report."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    report: PromptReport
