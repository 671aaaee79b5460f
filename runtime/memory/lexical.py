"""Deterministic hashed n-gram vectors: the degraded stand-in for a real embedding model.

Word unigrams/bigrams and character trigrams are hashed (blake2b, stable across runs and
machines, unlike ``hash()``) into a fixed number of signed buckets and L2-normalised. It
knows nothing about meaning ("dog" and "pet" share no n-gram), so it is only used when the
configured provider is down, and whatever it recalls is marked degraded.
"""

from __future__ import annotations

import hashlib
import itertools
import re

import numpy as np

DIMENSIONS = 512
_WORD = re.compile(r"[\w']+", re.UNICODE)


def _features(text: str) -> list[str]:
    words = [w.strip("'") for w in _WORD.findall(text.lower())]
    words = [w for w in words if w]
    feats = [f"w:{w}" for w in words]
    feats += [f"b:{a} {b}" for a, b in itertools.pairwise(words)]
    for word in words:
        padded = f"#{word}#"
        feats += [f"c:{padded[i : i + 3]}" for i in range(len(padded) - 2)]
    return feats


def lexical_vector(text: str, dimensions: int = DIMENSIONS) -> np.ndarray:
    """The ``(dimensions,)`` float32 vector of ``text``: unit length, or all zeros for text with no words."""
    vec = np.zeros(dimensions, dtype=np.float32)
    for feat in _features(text):
        digest = hashlib.blake2b(feat.encode("utf-8"), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        # One hash gives both the bucket and a sign, so collisions cancel rather than pile up.
        vec[value % dimensions] += 1.0 if (value >> 63) & 1 else -1.0
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


def lexical_vectors(texts: list[str], dimensions: int = DIMENSIONS) -> np.ndarray:
    """``(len(texts), dimensions)`` float32: :func:`lexical_vector` of each text, stacked."""
    if not texts:
        return np.zeros((0, dimensions), dtype=np.float32)
    return np.stack([lexical_vector(t, dimensions) for t in texts])
