"""Embedding providers: the real local model, the lexical stand-in, an /embeddings endpoint over respx."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
import respx

from runtime.config import LLMConfig
from runtime.core.errors import ConfigError, ExternalServiceError, ServiceUnavailableError, ValidationError
from runtime.memory.embeddings import LexicalEmbedder, LocalEmbedder, OpenAIEmbedder
from runtime.memory.onnx_minilm import MAX_TOKENS, MiniLM


async def test_local_vectors_are_unit_length_and_batching_does_not_change_them(local_embedder: LocalEmbedder) -> None:
    texts = ["My dog is called Rex", "what's my pet's name?", "Photosynthesis needs light"]
    batch = await local_embedder.embed(texts)
    assert batch.shape == (3, 384) and batch.dtype == np.float32
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    single = np.stack([(await local_embedder.embed([t]))[0] for t in texts])
    assert np.allclose(batch, single, atol=1e-4)
    assert float(batch[0] @ batch[1]) > float(batch[0] @ batch[2]) + 0.3
    assert local_embedder.table_suffix == "all_minilm_l6_v2__384"


def test_model_loads_lazily_and_truncates_long_text() -> None:
    model = MiniLM()
    assert not model.loaded
    vec = model.encode(["word " * (MAX_TOKENS * 4)])
    assert model.loaded and vec.shape == (1, 384)
    assert len(model._tokenizer.encode("word " * 1000).ids) == MAX_TOKENS


def test_a_model_file_with_the_wrong_sha256_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"not the model")
    with pytest.raises(ConfigError, match="sha256"):
        MiniLM(model_file=fake, expected_sha256="ab" * 32).encode(["x"])


async def test_lexical_is_deterministic_and_word_based() -> None:
    lex = LexicalEmbedder()
    a, b, c = await lex.embed(["my dog is called Rex", "My dog is called Rex!", "photosynthesis"])
    assert lex.degraded and np.allclose(a, b)
    assert float(a @ c) < 0.2


def _body(vectors: list[list[float]]) -> dict:
    return {
        "object": "list",
        "model": "text-embedding-3-small",
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }


@respx.mock
async def test_openai_provider_calls_the_configured_endpoint() -> None:
    route = respx.post("http://127.0.0.1:9/v1/embeddings").mock(
        return_value=httpx.Response(200, json=_body([[3.0, 4.0], [1.0, 0.0]]))
    )
    llm = LLMConfig(preset="openai", base_url="http://127.0.0.1:9/v1", api_key="test-key")
    embedder = OpenAIEmbedder("my-embedder", llm, http_client=httpx.AsyncClient())
    vecs = await embedder.embed(["a", "b"])
    assert np.allclose(vecs, [[0.6, 0.8], [1.0, 0.0]])
    assert embedder.ndims == 2 and route.call_count == 1
    assert route.calls[0].request.headers["authorization"] == "Bearer test-key"
    await embedder.aclose()


@respx.mock
async def test_openai_provider_translates_failures_for_the_guard() -> None:
    llm = LLMConfig(preset="openai", base_url="http://127.0.0.1:9/v1", api_key="k")
    embedder = OpenAIEmbedder("text-embedding-3-small", llm, http_client=httpx.AsyncClient())
    respx.post("http://127.0.0.1:9/v1/embeddings").mock(return_value=httpx.Response(503, json={}))
    with pytest.raises(ExternalServiceError) as err:
        await embedder.embed(["a"])
    assert err.value.retryable
    respx.post("http://127.0.0.1:9/v1/embeddings").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ServiceUnavailableError):
        await embedder.embed(["a"])
    respx.post("http://127.0.0.1:9/v1/embeddings").mock(return_value=httpx.Response(400, json={}))
    with pytest.raises(ValidationError) as err:
        await embedder.embed(["a"])
    assert not err.value.retryable
    await embedder.aclose()


def test_providers_are_registered_as_lancedb_embedding_functions() -> None:
    from lancedb.embeddings import get_registry

    lexical = get_registry().get("holdfast-lexical").create()
    assert lexical.ndims() == 512 and len(lexical.compute_query_embeddings("hello")[0]) == 512
    assert get_registry().get("holdfast-local").create().ndims() == 384
