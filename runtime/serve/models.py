"""The model names of the OpenAI-compatible face: ``holdfast`` and ``holdfast/<upstream model>``.

``holdfast`` is the configured upstream model (``[llm].model``, else the preset's);
``holdfast/<m>`` runs that request's turn with the upstream model ``m``. :class:`ModelCatalog`
knows which ``m`` exist: the upstream's ``GET /models``, asked through the runtime's llm Guard
and kept ``ttl`` seconds (a failed listing keeps the last good one).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from runtime.core.errors import AppError, NotFoundError, describe

if TYPE_CHECKING:
    from runtime.host.runtime import Runtime

log = logging.getLogger(__name__)

#: The model name clients ask for; ``holdfast/<upstream model>`` picks the upstream model.
MODEL = "holdfast"
PREFIX = f"{MODEL}/"
#: Seconds a listing of the upstream's models is used before it is asked again.
MODELS_TTL = 30.0


class ModelCatalog:
    """The upstream's model ids, listed through the runtime's llm Guard and kept ``ttl`` seconds
    (``clock``: monotonic seconds). A failed listing keeps the last good one."""

    def __init__(
        self, runtime: Runtime, *, ttl: float = MODELS_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._runtime = runtime
        self._ttl = ttl
        self._clock = clock
        self._listed: list[str] | None = None
        self._at = 0.0

    @property
    def configured(self) -> str:
        """The model ``holdfast`` stands for (``[llm].model`` or the preset's; "" if neither)."""
        return self._runtime.config.llm.effective_model

    async def upstream(self) -> list[str] | None:
        """The upstream's model ids (fresh, or the last good list when it cannot answer now);
        None when it was never listed."""
        if self._listed is None or self._clock() - self._at >= self._ttl:
            try:
                listed = await self._runtime.list_models()
            except AppError as exc:
                log.info("upstream models not listed: %s", describe(exc))
            else:
                self._listed, self._at = listed, self._clock()
        return self._listed

    async def names(self) -> list[str]:
        """``holdfast``, then ``holdfast/<m>`` for the configured model and every upstream model."""
        upstream = [self.configured] if self.configured else []
        upstream += [m for m in await self.upstream() or [] if m not in upstream]
        return [MODEL, *(f"{PREFIX}{m}" for m in upstream)]

    async def resolve(self, name: str) -> str | None:
        """The upstream model a request's ``model`` asks for: None for ``holdfast`` (the
        configured one), ``m`` for ``holdfast/m``. NotFoundError (OpenAI's ``model_not_found``)
        for any other name, and for an ``m`` the upstream does not list."""
        if name == MODEL:
            return None
        wanted = name.removeprefix(PREFIX) if name.startswith(PREFIX) else ""
        if wanted and wanted == self.configured:
            return wanted
        listed = await self.upstream() if wanted else []
        if wanted and (listed is None or wanted in listed):
            return wanted
        raise model_not_found(name)


def model_not_found(name: str) -> NotFoundError:
    """OpenAI's 404 for an unknown model (``error.code`` ``model_not_found``, ``param`` ``model``)."""
    return NotFoundError(
        f"The model `{name}` does not exist or you do not have access to it; "
        f"this server answers as {MODEL} and {PREFIX}<upstream model> (GET /v1/models lists them)",
        details={"code": "model_not_found", "param": "model"},
    )
