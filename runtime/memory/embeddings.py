"""Embedding providers: ``local`` (MiniLM on onnxruntime), ``openai`` (an /embeddings
endpoint) and ``lexical`` (hashed n-grams, the degraded fallback), chosen by config.

Each provider is registered as a LanceDB embedding function (``@register("holdfast-…")``)
so the tables can be opened and queried with LanceDB's own tooling. The runtime itself
uses the async :class:`Embedder` adapters below: the vector store calls them inside
Guard("embeddings"), which owns retries, so the LanceDB functions have ``max_retries=0``
and every provider translates its foreign errors into :class:`AppError` subclasses.

Vectors from different models never share a table; :attr:`Embedder.table_suffix` names the
model and dimension for the table name.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import numpy as np
from lancedb.embeddings import TextEmbeddingFunction, register
from pydantic import PrivateAttr

from runtime.config import Config, LLMConfig
from runtime.core.errors import AppError, ExternalServiceError, ValidationError
from runtime.memory import lexical, onnx_minilm
from runtime.resilience.http_errors import Endpoint, translate_http

if TYPE_CHECKING:
    from openai.types import CreateEmbeddingResponse

#: Dimensions of well-known /embeddings models, so a table can be named before the first call.
KNOWN_OPENAI_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    "nomic-embed-text": 768,
    "mxbai-embed-large": 1024,
    "all-minilm": 384,
}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "model"


class Embedder(Protocol):
    """What the vector store needs from a provider."""

    provider: str
    model: str
    #: True for the lexical stand-in: whatever it finds is marked degraded.
    degraded: bool

    @property
    def ndims(self) -> int:
        """Vector dimensions.

        Raises:
            ValidationError: not known yet (an /embeddings model not in :data:`KNOWN_OPENAI_DIMS`
                before its first call).
        """
        ...

    @property
    def table_suffix(self) -> str:
        """``<model slug>__<ndims>``: the memory table's name suffix, unique per model and dimension."""
        ...

    async def embed(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), ndims)`` float32 vectors, each of unit length, in the order of ``texts``.

        Raises:
            AppError: the provider failed (its errors translated to the taxonomy).
        """
        ...


class _Base:
    provider = ""
    model = ""
    degraded = False

    @property
    def ndims(self) -> int:
        raise NotImplementedError

    @property
    def table_suffix(self) -> str:
        return f"{_slug(self.model)}__{self.ndims}"


# ---------------------------------------------------------------- local


@register("holdfast-local")
class LocalMiniLMFunction(TextEmbeddingFunction):
    """LanceDB embedding function for all-MiniLM-L6-v2 on onnxruntime."""

    name: str = onnx_minilm.MODEL_NAME
    max_retries: int = 0
    intra_op_threads: int = 1
    _model: onnx_minilm.MiniLM = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._model = onnx_minilm.MiniLM(intra_op_threads=self.intra_op_threads)

    def ndims(self) -> int:
        """384, the model's dimensions."""
        return onnx_minilm.DIMENSIONS

    # lancedb annotates the return as List[np.array] (a function, not a type); mypy cannot match it.
    def generate_embeddings(self, texts: Any, *args: Any, **kwargs: Any) -> list[np.ndarray]:  # type: ignore[override]
        """One unit-length 384-d float32 vector per text (LanceDB's embedding-function API)."""
        return list(self._model.encode([str(t) for t in texts]))

    @property
    def minilm(self) -> onnx_minilm.MiniLM:
        """The lazily loaded encoder."""
        return self._model


class LocalEmbedder(_Base):
    """MiniLM in a worker thread so the event loop (and the TUI) never waits on the CPU."""

    provider = "local"

    def __init__(self, model: str = onnx_minilm.MODEL_NAME, *, intra_op_threads: int = 1) -> None:
        if _slug(model) != _slug(onnx_minilm.MODEL_NAME):
            raise ValidationError(
                f"[memory].embedding_model {model!r} is not available offline; the local provider "
                f"ships only {onnx_minilm.MODEL_NAME}"
            )
        self.model = onnx_minilm.MODEL_NAME
        self.function = LocalMiniLMFunction.create(intra_op_threads=intra_op_threads)

    @property
    def ndims(self) -> int:
        """384, the model's dimensions."""
        return onnx_minilm.DIMENSIONS

    @property
    def minilm(self) -> onnx_minilm.MiniLM:
        """The lazily loaded encoder (the health check asks it whether it is loaded)."""
        return self.function.minilm

    async def embed(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), 384)`` unit-length float32 vectors, encoded in a worker thread.

        Raises:
            ServiceUnavailableError, ConfigError: the model cannot be loaded (see :meth:`MiniLM.load`).
            ExternalServiceError: onnxruntime or the tokenizer failed (not retryable).
        """
        try:
            return await asyncio.to_thread(self.minilm.encode, list(texts))
        except AppError:
            raise
        except Exception as exc:  # onnxruntime/tokenizers raise untyped errors
            raise ExternalServiceError(
                f"local embedding failed: {type(exc).__name__}", service="embeddings", retryable=False
            ) from exc


# ---------------------------------------------------------------- lexical


@register("holdfast-lexical")
class LexicalFunction(TextEmbeddingFunction):
    """LanceDB embedding function for the hashed n-gram vectors."""

    dimensions: int = lexical.DIMENSIONS
    max_retries: int = 0

    def ndims(self) -> int:
        """The configured dimensions (512 by default)."""
        return self.dimensions

    # lancedb annotates the return as List[np.array] (a function, not a type); mypy cannot match it.
    def generate_embeddings(self, texts: Any, *args: Any, **kwargs: Any) -> list[np.ndarray]:  # type: ignore[override]
        """One hashed n-gram vector per text (LanceDB's embedding-function API)."""
        return list(lexical.lexical_vectors([str(t) for t in texts], self.dimensions))


class LexicalEmbedder(_Base):
    """The degraded stand-in: hashed n-gram vectors, no model, never fails (:mod:`runtime.memory.lexical`)."""

    provider = "lexical"
    model = "lexical-ngram"
    degraded = True

    def __init__(self, dimensions: int = lexical.DIMENSIONS) -> None:
        self._dims = dimensions

    @property
    def ndims(self) -> int:
        """The dimensions given at construction (512 by default)."""
        return self._dims

    async def embed(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), ndims)`` float32 vectors; unit length, or zero for a text with no words."""
        # Cheap enough (tens of microseconds a text) to run inline.
        return lexical.lexical_vectors(list(texts), self._dims)


# ---------------------------------------------------------------- openai


#: How errors of an /embeddings endpoint are named and what they suggest; the translation is
#: the one every HTTP endpoint shares (:mod:`runtime.resilience.http_errors`), so a status
#: gets the same error type and breaker effect here as from /chat/completions.
EMBEDDINGS_ENDPOINT = Endpoint(
    service="embeddings",
    label="the embedding endpoint",
    credentials_hint="check the API key ([llm].api_key or its environment variable)",
    not_found_hint="check [memory].embedding_model and [llm].base_url",
)


def _translate_openai(exc: BaseException) -> AppError:
    """The AppError for a failed /embeddings call (see :func:`translate_http`)."""
    return translate_http(exc, EMBEDDINGS_ENDPOINT)


def _vectors_from(response: CreateEmbeddingResponse, expected: int) -> np.ndarray:
    items = sorted(response.data, key=lambda d: d.index)
    if len(items) != expected:
        raise ExternalServiceError(
            f"embedding endpoint returned {len(items)} vectors for {expected} texts",
            service="embeddings",
            retryable=False,
        )
    vecs = np.asarray([d.embedding for d in items], dtype=np.float32)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs / np.clip(norms, 1e-12, None)


@register("holdfast-openai")
class OpenAIFunction(TextEmbeddingFunction):
    """LanceDB embedding function for an OpenAI-compatible /embeddings endpoint (sync client)."""

    name: str = "text-embedding-3-small"
    base_url: str = ""
    dimensions: int = 0
    max_retries: int = 0
    _api_key: str = PrivateAttr(default="")

    def ndims(self) -> int:
        """The configured dimensions, else the known ones of the model, else 0 (unknown)."""
        return self.dimensions or KNOWN_OPENAI_DIMS.get(self.name, 0)

    # lancedb annotates the return as List[np.array] (a function, not a type); mypy cannot match it.
    def generate_embeddings(self, texts: Any, *args: Any, **kwargs: Any) -> list[np.ndarray]:  # type: ignore[override]
        """One unit-length vector per text from ``POST /embeddings`` (LanceDB's embedding-function API).

        Raises:
            AppError: the request failed (translated like every HTTP endpoint's errors), or the
                endpoint returned a different number of vectors than texts.
        """
        import openai

        texts = [str(t) for t in texts]
        with httpx.Client() as http:
            client = openai.OpenAI(
                api_key=self._api_key or "unused",
                base_url=self.base_url or None,
                max_retries=0,
                http_client=http,  # type: ignore[arg-type]  # openai 3.x is typed for httpx2, accepts httpx
            )
            try:
                response = client.embeddings.create(model=self.name, input=texts, encoding_format="float")
            except Exception as exc:  # translated to our taxonomy below
                raise _translate_openai(exc) from exc
        return list(_vectors_from(response, len(texts)))


class OpenAIEmbedder(_Base):
    """The configured endpoint's /embeddings through ``openai.AsyncOpenAI`` (no SDK retries)."""

    provider = "openai"

    def __init__(
        self,
        model: str,
        llm: LLMConfig,
        *,
        http_client: httpx.AsyncClient | None = None,
        environ: dict[str, str] | None = None,
    ) -> None:
        import openai

        self.model = model
        self._dims = KNOWN_OPENAI_DIMS.get(model, 0)
        self._http = http_client or httpx.AsyncClient(
            timeout=httpx.Timeout(llm.read_timeout, connect=llm.connect_timeout)
        )
        self._client = openai.AsyncOpenAI(
            api_key=llm.resolve_api_key(environ) or "unused",
            base_url=llm.effective_base_url or None,
            max_retries=0,
            http_client=self._http,  # type: ignore[arg-type]  # openai 3.x is typed for httpx2, accepts httpx
        )

    @property
    def ndims(self) -> int:
        """The model's dimensions.

        Raises:
            ValidationError: unknown until the first call (or :meth:`probe`) for a model not in
                :data:`KNOWN_OPENAI_DIMS`.
        """
        if not self._dims:
            raise ValidationError(f"dimension of embedding model {self.model!r} unknown until the first call")
        return self._dims

    async def probe(self) -> int:
        """Learn the dimension of an unknown model with one tiny request; returns it (same errors as :meth:`embed`)."""
        if not self._dims:
            self._dims = int((await self.embed(["dimension probe"])).shape[1])
        return self._dims

    async def embed(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), ndims)`` unit-length float32 vectors from ``POST /embeddings``, in order.

        The response's items are ordered by their ``index`` (the OpenAI embeddings format).

        Raises:
            AppError: the request failed, translated as for every HTTP endpoint
                (:mod:`runtime.resilience.http_errors`).
            ExternalServiceError: the endpoint returned another number of vectors, or other
                dimensions than before (not retryable).
        """
        try:
            response = await self._client.embeddings.create(
                model=self.model, input=list(texts), encoding_format="float"
            )
        except Exception as exc:  # translated to our taxonomy below
            raise _translate_openai(exc) from exc
        vecs = _vectors_from(response, len(texts))
        if self._dims and vecs.shape[1] != self._dims:
            raise ExternalServiceError(
                f"embedding model {self.model!r} returned {vecs.shape[1]} dimensions, expected {self._dims}",
                service="embeddings",
                retryable=False,
            )
        self._dims = int(vecs.shape[1])
        return vecs

    async def aclose(self) -> None:
        """Close the HTTP client (also one passed in by the caller)."""
        await self._http.aclose()


EmbedderFactory = Callable[[Config], Embedder]


def make_embedder(config: Config, *, http_client: httpx.AsyncClient | None = None) -> Embedder:
    """The provider ``[memory].embedding_provider`` names (``local``, ``openai``, else lexical).

    Raises:
        ValidationError: ``local`` with a model other than all-MiniLM-L6-v2 (the only one shipped).
    """
    mem = config.memory
    if mem.embedding_provider == "local":
        return LocalEmbedder(mem.embedding_model)
    if mem.embedding_provider == "openai":
        return OpenAIEmbedder(mem.embedding_model, config.llm, http_client=http_client)
    return LexicalEmbedder()
