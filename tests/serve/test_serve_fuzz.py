"""The HTTP API fuzzed from its own OpenAPI document (schemathesis, on a real `tunesmith serve` process on a
loopback port): valid and invalid bodies, odd text, odd numbers. No request may get a 5xx other than a full
queue (503) or a timeout (504); every error is OpenAI's JSON error object; the server stays up and answers.
Requests that fit the document and requests that break it (negative mode). `TUNESMITH_FUZZ_EXAMPLES` sets the
examples per operation and mode (default 100; more for a long run)."""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from test_serve_api import KEY, running_server

EXAMPLES = int(os.environ.get("TUNESMITH_FUZZ_EXAMPLES", "100"))


@pytest.fixture(scope="module")
def fuzzed_server(tiny_runs):
    with running_server(tiny_runs, 24) as running:  # short answers: many requests in little time
        yield running


def operations(url: str) -> list:
    doc = schemathesis.openapi.from_url(url + "/openapi.json")
    return [op.ok() for op in doc.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_breaks_the_server(fuzzed_server, mode):
    url, auth = fuzzed_server["url"], {"Authorization": f"Bearer {KEY}"}
    ops = operations(url)
    assert {op.path for op in ops} >= {"/v1/chat/completions", "/v1/completions", "/v1/models/{name}"}
    fuzzed = []
    for op in ops:  # schemathesis draws the requests, hypothesis shrinks a failure to its smallest form

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            response = case.call(base_url=url, headers=auth, timeout=60)
            assert response.status_code < 500 or response.status_code in (503, 504), response.text
            if response.status_code >= 400 and case.path.startswith("/v1"):
                error = response.json()["error"]  # OpenAI's error object, never a traceback
                assert error["message"] and error["type"] and "Traceback" not in response.text
            assert fuzzed_server["proc"].poll() is None, "the server exited"

        try:
            check()
        except Unsatisfiable:  # negative mode: an operation with no input to get wrong (GET /health)
            assert mode == GenerationMode.NEGATIVE
            continue
        fuzzed.append(op.path)
    assert {"/v1/chat/completions", "/v1/completions"} <= set(fuzzed)


def test_the_document_describes_the_bodies_and_the_served_models(fuzzed_server):
    import json
    import urllib.request

    with urllib.request.urlopen(fuzzed_server["url"] + "/openapi.json", timeout=10) as r:
        doc = json.loads(r.read())
    chat = doc["paths"]["/v1/chat/completions"]["post"]
    assert chat["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ChatRequest")
    assert {"400", "404", "503"} <= set(chat["responses"])
    served = doc["components"]["schemas"]["ChatRequest"]["properties"]["model"]["enum"]
    assert "hello" in served and len(served) >= 2
