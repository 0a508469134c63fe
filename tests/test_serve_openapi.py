"""The running service keeps to its own OpenAPI document: schemathesis generates requests from
it (valid ones and ones that break it), sends them with a valid key over real HTTP, and checks
every answer: no 5xx the document does not declare, no server error at all for what a client
sends, statuses, content types, headers and bodies as documented."""

from __future__ import annotations

import pytest

from workbench.serve import start_server

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

KEY = "wb-test-key-0123456789"
EXAMPLES = 50  # per operation and generation mode


def test_the_service_answers_what_its_openapi_document_says(sample_project):
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    from workbench import sample
    from workbench.runs import start_run
    from workbench.serve import plan_deployment

    sample.fill_prerequisites(sample_project, 7)
    start_run(sample_project, sample.SAMPLE_PROMPT, dataset=sample.SAMPLE_DATASET, split="test",
              model="fake/echo", limit=4, progress=False)
    plan_deployment(sample_project, "triage", model="fake/echo", force=True, burst=100_000,
                    rate_limit_per_minute=100_000)
    server = start_server(sample_project, api_keys=[KEY])
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_headers_conformance, response_schema_conformance]
    try:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.label for op in operations} >= {"POST /v1/predict", "POST /v1/feedback",
                                                   "GET /v1/info", "GET /healthz",
                                                   "POST /v1/chat/completions",
                                                   "GET /v1/models"}
        statuses: dict[str, set[int]] = {}
        for operation in operations:
            # requests that break the document: only bodies can (the rest has no parameters)
            modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE]
                                                 if operation.method.upper() == "POST" else [])
            for mode in modes:

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(max_examples=EXAMPLES, deadline=None, database=None,
                          phases=[Phase.explicit, Phase.generate],
                          suppress_health_check=list(HealthCheck))
                def call(case):
                    # generated credentials (from the security schemes) give way to the key
                    case.headers = {name: value for name, value in (case.headers or {}).items()
                                    if name.lower() not in ("authorization", "x-api-key")}
                    case.headers["Authorization"] = f"Bearer {KEY}"
                    response = case.call_and_validate(base_url=server.url, checks=checks)
                    statuses.setdefault(case.operation.label, set()).add(
                        response.status_code)

                call()
    finally:
        server.stop()
    # the fuzzing reached the service's answers, not only its refusals (and no key was refused)
    assert statuses["GET /v1/info"] == {200}
    assert {200, 422} <= statuses["POST /v1/predict"] and 401 not in statuses["POST /v1/predict"]
    assert {404, 422} <= statuses["POST /v1/feedback"]
    # the OpenAI-compatible routes answer OpenAI's way: invalid requests are 400, not 422
    assert {200, 400} <= statuses["POST /v1/chat/completions"]
    assert 422 not in statuses["POST /v1/chat/completions"]
    assert statuses["GET /v1/models"] == {200}
