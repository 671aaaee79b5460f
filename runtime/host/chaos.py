"""Chaos controls for demos and tests: kill and restart embedded backends, inject LLM faults,
take memory offline. Used by the UI's ``/chaos`` command and the degradation tests.

Everything here acts on real parts: ``kill`` sends SIGKILL to the embedded process, ``faults``
goes through the demo server's admin endpoint, ``memory(False)`` forces the memory and
embeddings breakers open (the store then answers degraded, exactly as in an outage).
"""

from __future__ import annotations

from typing import Any

from runtime.core.errors import NotFoundError, ValidationError

_MEMORY_BREAKERS = ("memory", "embeddings")


class Chaos:
    def __init__(self, runtime: Any) -> None:
        self.rt = runtime

    def _backend(self, name: str) -> Any:
        backend = self.rt.backends.get(name)
        if backend is None:
            raise NotFoundError(f"no embedded backend {name!r} (embedded: {', '.join(self.rt.backends) or 'none'})")
        return backend

    def kill(self, name: str) -> None:
        """SIGKILL the embedded ``redis`` or ``llm`` process."""
        self._backend(name).kill()

    async def start(self, name: str) -> None:
        """Restart a killed backend on its old port."""
        await self._backend(name).astart()

    async def faults(self, **faults: Any) -> dict[str, Any]:
        """Set demo LLM server faults (latency, error_rate, fail_next, down, ...)."""
        from runtime.demo.admin import DemoAdmin

        server = self.rt.backends.get("llm")
        if server is None:
            raise ValidationError("faults need the embedded demo LLM server")
        async with DemoAdmin(server.root_url) as admin:
            return await admin.set_faults(**faults)

    def memory(self, on: bool) -> None:
        """Take long-term memory offline (``False``) or bring it back (``True``)."""
        for name in _MEMORY_BREAKERS:
            breaker = self.rt.resilience.breakers.get(name)
            if on:
                breaker.reset()
            else:
                breaker.force_open("memory taken offline by /chaos")

    async def reset(self) -> None:
        """Everything back to normal: backends running, no faults, breakers reset."""
        for name, backend in self.rt.backends.items():
            if not backend.running():
                await self.start(name)
        if "llm" in self.rt.backends:
            from runtime.demo.admin import DemoAdmin

            async with DemoAdmin(self.rt.backends["llm"].root_url) as admin:
                await admin.reset()
        self.memory(True)
