"""A small async client for the demo server's ``/admin/faults`` API (the UI's /chaos commands).

The admin API is not part of the OpenAI protocol, so this goes straight through httpx and
translates its failures into the error taxonomy at this boundary.
"""

from __future__ import annotations

from typing import Any

import httpx

from runtime.core.errors import ServiceUnavailableError, ValidationError


class DemoAdmin:
    """``await DemoAdmin(base_url).set_faults(down=True)``; ``base_url`` may end in ``/v1``.

    ``timeout`` (seconds) applies to the client this builds; a ``client`` passed in is used
    as is and not closed by :meth:`aclose`. Every method raises
    :class:`ServiceUnavailableError` when the admin API cannot be reached or answers an
    unexpected status, and :class:`ValidationError` when it rejects a fault (HTTP 400).
    """

    def __init__(self, base_url: str, *, timeout: float = 5.0, client: httpx.AsyncClient | None = None) -> None:
        root = base_url.rstrip("/").removesuffix("/v1")
        self.url = f"{root}/admin/faults"
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None

    async def _send(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = await self._client.request(method, self.url, json=body)
        except httpx.HTTPError as exc:
            raise ServiceUnavailableError(f"demo LLM admin API unreachable: {exc}", service="llm") from exc
        if response.status_code == 400:
            raise ValidationError(response.json().get("error", {}).get("message", "bad fault"), service="llm")
        if response.status_code != 200:
            raise ServiceUnavailableError(
                f"demo LLM admin API answered {response.status_code}", service="llm", status_code=response.status_code
            )
        data: dict[str, Any] = response.json()
        return data

    async def status(self) -> dict[str, Any]:
        """``{"faults": {...}, "requests": n, "streams_completed": n, ...}``."""
        return await self._send("GET")

    async def faults(self) -> dict[str, Any]:
        """The faults set now, by name (see :class:`runtime.demo.faults.Faults`)."""
        return (await self.status())["faults"]

    async def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Change some faults, keep the others; returns the new faults."""
        return (await self._send("POST", changes))["faults"]

    async def reset(self, **changes: Any) -> dict[str, Any]:
        """Clear every fault, then apply ``changes``."""
        return (await self._send("POST", {"reset": True, **changes}))["faults"]

    async def profile(self) -> str:
        """The name of the quirk profile the server speaks now (see :mod:`runtime.demo.profiles`)."""
        return str((await self.status())["profile"])

    async def set_profile(self, name: str) -> str:
        """Switch the server to the quirk profile ``name``; returns the profile now in force.

        Raises:
            ValidationError: the server knows no such profile (its message lists the known ones).
            ServiceUnavailableError: the admin API cannot be reached.
        """
        return str((await self._send("POST", {"profile": name}))["profile"])

    async def requests(self) -> int:
        """Model requests the server has counted since it started (or since the last reset)."""
        return int((await self.status())["requests"])

    async def aclose(self) -> None:
        """Close the HTTP client if this object built it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> DemoAdmin:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
