"""``[pricing]``: which entry prices a model (the exact name, else the longest matching glob,
any case) and what a reply costs by it."""

from __future__ import annotations

import pytest

from runtime.config.settings import PricingConfig

TABLE = PricingConfig(
    models={
        "gpt-4o*": {"input": 2.5, "output": 10.0},
        "gpt-4o-mini*": {"input": 0.15, "output": 0.6},
        "gpt-4o-mini-special": {"input": 1.0, "output": 1.0},
        "*/llama-3*": {"input": 0.02, "output": 0.05},
    }
)


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("gpt-4o", (2.5, 10.0)),
        ("gpt-4o-2024-08-06", (2.5, 10.0)),
        ("gpt-4o-mini-2024-07-18", (0.15, 0.6)),  # the longer pattern wins, whatever the order
        ("GPT-4o-Mini", (0.15, 0.6)),  # any case
        ("gpt-4o-mini-special", (1.0, 1.0)),  # the exact name wins
        ("meta-llama/llama-3.1-8b-instruct", (0.02, 0.05)),
        ("holdfast-demo", None),
    ],
)
def test_which_entry_prices_a_model(model: str, price: tuple[float, float] | None) -> None:
    found = TABLE.price_for(model)
    assert (None if found is None else (found.input, found.output)) == price


def test_cost_is_per_million_tokens_in_and_out() -> None:
    assert TABLE.cost("gpt-4o", 1_000_000, 0) == pytest.approx(2.5)
    assert TABLE.cost("gpt-4o-mini", 1234, 56) == pytest.approx((1234 * 0.15 + 56 * 0.6) / 1e6)
    assert TABLE.cost("holdfast-demo", 1000, 1000) is None
