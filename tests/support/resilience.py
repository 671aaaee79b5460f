"""Builders of resilience settings for the resilience tests."""

from __future__ import annotations

from runtime.config import ResilienceConfig, ServiceResilience


def settings(**overrides: object) -> ServiceResilience:
    """One service's resilience settings: the defaults with ``overrides`` (field names of
    ``ServiceResilience``; pydantic validates them and raises on a bad one)."""
    return ServiceResilience(**overrides)  # type: ignore[arg-type]


def config_with(service: str = "redis", **overrides: object) -> ResilienceConfig:
    """A ResilienceConfig whose ``service`` section has ``overrides`` (others default).
    ``tool:<name>`` services share the ``tools`` section."""
    section = service.split(":", 1)[0]
    section = "tools" if section == "tool" else section
    return ResilienceConfig(**{section: ServiceResilience(**overrides)})  # type: ignore[arg-type]
