"""A schemathesis run over ``holdfast serve``'s own OpenAPI schema: for every operation, bounded
generated inputs (valid and not), and no answer may be a 5xx. Bad input is always a typed 4xx."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from runtime.demo.launcher import DemoLLMServer
from runtime.state.embedded_redis import EmbeddedRedis
from tests.support.serve import ServerThread, serve_config

pytestmark = [pytest.mark.redis, pytest.mark.e2e, pytest.mark.slow]

#: Generated examples per operation: bounded so the run stays within the fast suite's time.
EXAMPLES = 15


@pytest.fixture(scope="module")
def schema_server(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis, demo_llm: DemoLLMServer
) -> Iterator[ServerThread]:
    redis_server.start()
    config = serve_config(
        tmp_path_factory.mktemp("schema-data"),
        redis_server.url,
        demo_llm.url,
        server={"requests_per_minute": 0},
        agent={"turn_lock_timeout": 1.0, "user": "local"},
    )
    with ServerThread(config) as server:
        yield server


@pytest.fixture(scope="module")
def api_schema(schema_server: ServerThread) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{schema_server.base_url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_input_gets_a_5xx(case: schemathesis.Case) -> None:
    response = case.call(timeout=30)
    assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text}"
    if response.status_code >= 400:
        body = response.json()["error"]
        header = response.headers["x-request-id"]
        assert body["request_id"] == (header[0] if isinstance(header, list) else header)
