"""Which vector index the memory table gets, and how a recall searches it.

Measured on 100k clustered 384-d rows over 100 users, 2 shared CPUs (tests/bench/bench_memory.py):
IVF_PQ with LanceDB's defaults took 316 s to build (sqrt(rows) partitions: 596 s), nearly all
of it PQ codebook training, and still needs ``refine_factor`` to re-rank with the full vectors.
IVF_FLAT keeps the full vectors in the partitions, so it builds in about 5 s (k-means only),
its distances are exact (the similarity threshold compares true cosine scores, no refine
step), and at these sizes scanning full vectors of the probed partitions costs a few
milliseconds: recall has a per-user filter, so only about 1% of each partition matches.

Recall@5 versus exact search depends on the share of partitions probed, not their number
(neighbours of a filtered query spread over partitions): about 0.97 at half, 0.99 at 2/3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from lancedb.index import IvfFlat
    from lancedb.query import AsyncVectorQueryBase

#: A LanceDB async vector (or hybrid) query; :meth:`SearchPlan.apply` returns the same kind.
Q = TypeVar("Q", bound="AsyncVectorQueryBase")

#: Rows per IVF partition when the index is trained (rows / 2048: 48 partitions at 100k).
ROWS_PER_PARTITION = 2048
#: Share of partitions every query probes; more are searched only if too few rows match.
PROBE_SHARE = 0.6
#: LanceDB's own default probe count; small indexes probe all their partitions anyway.
MIN_PROBES = 20
#: For a quantised index (an IVF_PQ left by an older version): re-rank this many times the limit.
PQ_REFINE_FACTOR = 10


def num_partitions(rows: int) -> int:
    """IVF partitions for an index trained on ``rows`` rows: one per :data:`ROWS_PER_PARTITION`, at least 1."""
    return max(1, rows // ROWS_PER_PARTITION)


def probes(rows: int) -> int:
    """Partitions to probe for an index trained on ``rows`` rows."""
    return max(MIN_PROBES, math.ceil(num_partitions(rows) * PROBE_SHARE))


def vector_index(rows: int) -> IvfFlat:
    """The index config for a table of ``rows`` rows (cosine, as every recall searches)."""
    from lancedb.index import IvfFlat

    return IvfFlat(distance_type="cosine", num_partitions=num_partitions(rows))


def describe_vector_index(rows: int, ndims: int) -> str:
    """One line naming the index :func:`vector_index` builds for ``rows`` rows of ``ndims``-d vectors."""
    return f"IVF_FLAT(cosine, {num_partitions(rows)} partitions, {ndims}-d)"


def describe_search() -> str:
    """One line saying how a recall probes the index (for the memory benchmark's report)."""
    return f"probing {PROBE_SHARE:.0%} of partitions (at least {MIN_PROBES}), more only if too few rows match"


@dataclass(frozen=True)
class SearchPlan:
    """How to query the vector index that exists on the table."""

    probes: int
    refine_factor: int | None = None

    def apply(self, query: Q) -> Q:
        """``query`` with this plan's probe range (and refine factor for a quantised index)."""
        # At least ``probes`` partitions; unlimited beyond that when the filter leaves
        # fewer than ``limit`` rows there (a user with few memories still gets all of them).
        # (LanceDB checks min <= max on each call: lift the maximum first.)
        query = query.maximum_nprobes(0).minimum_nprobes(self.probes)
        if self.refine_factor:
            query = query.refine_factor(self.refine_factor)
        return query


def plan_for(index_type: str, indexed_rows: int) -> SearchPlan:
    """The plan for an existing index, from its statistics (the partition count was
    derived from the row count at build time; rows added since only raise the estimate)."""
    # Quantised indexes (PQ, SQ, RQ) return approximate distances: re-rank with full vectors.
    kind = index_type.upper()
    refine = PQ_REFINE_FACTOR if any(q in kind for q in ("PQ", "SQ", "RQ")) else None
    return SearchPlan(probes=probes(indexed_rows), refine_factor=refine)
