"""A filter between a transport and the SDK's ``ClientSession`` that drops the tools a server lists
with an invalid schema, so one bad tool costs that tool only, not the server.

The SDK parses a ``tools/list`` reply as a whole: one tool whose ``inputSchema`` is not an
object fails the listing, and with it every tool of the server. Here, on the way in, each tool
of a ``tools/list`` reply (recognised by the id of the request that asked for it) is checked
on its own: the MCP ``Tool`` shape, then :func:`~runtime.tools.mcp.tools.check_input_schema`.
The ones that fail are removed from the reply and recorded in :attr:`ListingFilter.skipped`
(tool -> reason); the rest reach the session untouched. Works for any transport (stdio, HTTP).
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types
from mcp.shared.message import SessionMessage
from pydantic import ValidationError as PydanticValidationError

from runtime.core.safe_text import clean
from runtime.tools.mcp.tools import InvalidToolSchema, check_input_schema

if TYPE_CHECKING:
    from mcp.client._transport import ReadStream, WriteStream


class ListingFilter:
    """The pair of stream wrappers for one connection, and what they skipped.

    ``reader`` and ``writer`` wrap the transport's streams; hand them to the ``ClientSession``.
    """

    def __init__(self, read: ReadStream[SessionMessage | Exception], write: WriteStream[SessionMessage]) -> None:
        self.skipped: dict[str, str] = {}
        self._pending: set[str | int] = set()
        self.reader = _Reader(read, self)
        self.writer = _Writer(write, self)

    def sent(self, item: SessionMessage) -> None:
        """Note a ``tools/list`` request going out, so its response is filtered."""
        message = item.message
        if isinstance(message, mcp_types.JSONRPCRequest) and message.method == "tools/list":
            self._pending.add(message.id)

    def received(self, item: SessionMessage | Exception) -> SessionMessage | Exception:
        """Pass ``item`` on; a ``tools/list`` response loses each tool whose schema is invalid
        (recorded in :attr:`skipped` as name -> reason)."""
        if not isinstance(item, SessionMessage):
            return item
        message = item.message
        if not isinstance(message, mcp_types.JSONRPCResponse) or message.id not in self._pending:
            return item
        self._pending.discard(message.id)
        tools = message.result.get("tools")
        if not isinstance(tools, list):
            return item  # the SDK reports a listing without a tools list
        kept = [raw for raw in tools if self._valid(raw)]
        if len(kept) == len(tools):
            return item
        result = {**message.result, "tools": kept}
        return SessionMessage(message.model_copy(update={"result": result}), metadata=item.metadata)

    def _valid(self, raw: Any) -> bool:
        # The name is the server's text: shown in holdfast mcp list and /tools, so no terminal control.
        name = " ".join(clean(str(raw.get("name", "?"))).split())[:100] or "?" if isinstance(raw, dict) else "?"
        try:
            tool = mcp_types.Tool.model_validate(raw)
            check_input_schema(tool.input_schema)
        except InvalidToolSchema as exc:
            self.skipped[name] = exc.message
            return False
        except PydanticValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "tool"
            self.skipped[name] = f"not a valid MCP tool definition: {where}: {first['msg']}"
            return False
        return True


class _Reader:
    """The read side: items pass through :meth:`ListingFilter.received`."""

    def __init__(self, inner: ReadStream[SessionMessage | Exception], owner: ListingFilter) -> None:
        self._inner = inner
        self._owner = owner

    def __getattr__(self, name: str) -> Any:  # ``last_context`` and whatever else the SDK reads
        return getattr(self._inner, name)

    async def receive(self) -> SessionMessage | Exception:
        return self._owner.received(await self._inner.receive())

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> _Reader:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _Reader:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        await self.aclose()
        return None


class _Writer:
    """The write side: ``tools/list`` requests are noted so their replies can be filtered."""

    def __init__(self, inner: WriteStream[SessionMessage], owner: ListingFilter) -> None:
        self._inner = inner
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def send(self, item: SessionMessage, /) -> None:
        self._owner.sent(item)
        await self._inner.send(item)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _Writer:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        await self.aclose()
        return None
