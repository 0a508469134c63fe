"""The served API probed from outside, over real HTTP (uvicorn on loopback): body limits in
characters and bytes, chunked bodies, refusals counted rather than traced one by one, the
OpenAPI document and /docs, keys compared exactly, and a table of hostile inputs."""

from __future__ import annotations

import json
import tracemalloc

import httpx
import pytest

from workbench.serve import plan_deployment, start_server
from workbench.tracing import spans

KEY = "wb-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
ERROR_KEYS = {"error", "fix", "request_id"}


def _deploy(project, **limits):
    from workbench import sample
    from workbench.runs import start_run

    sample.fill_prerequisites(project, 7)
    start_run(project, sample.SAMPLE_PROMPT, dataset=sample.SAMPLE_DATASET, split="test",
              model="fake/echo", limit=4, progress=False)
    return plan_deployment(project, "triage", model="fake/echo", force=True, **limits)


@pytest.fixture
def service(sample_project):
    """A service with room for many requests (rate limits are tested apart)."""
    _deploy(sample_project, burst=1000, rate_limit_per_minute=6000)
    server = start_server(sample_project, api_keys=[KEY, "second-key-abcdef"])
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield sample_project, client, server
    server.stop()


@pytest.fixture
def tight(sample_project):
    """A service whose keys have a burst of 3."""
    _deploy(sample_project, burst=3, rate_limit_per_minute=30)
    server = start_server(sample_project, api_keys=[KEY])
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield sample_project, client
    server.stop()


def _one_shape(reply: httpx.Response) -> dict:
    body = reply.json()
    assert {"error", "fix"} <= set(body) <= ERROR_KEYS, body
    assert "detail" not in body and "Traceback" not in reply.text and KEY not in reply.text
    return body


def _project_bytes(project) -> bytes:
    project.store.flush()
    return b"".join(p.read_bytes() for p in project.path.rglob("*") if p.is_file())


# -- 1, 2: characters per field, bytes at a separate bound, read as they arrive ---------------

def test_fields_are_limited_in_characters_and_the_body_in_bytes(service):
    _, client, _ = service
    # 3,500 accented characters, sent as json.dumps sends them: 21 KB of \u00e9 escapes
    accented = json.dumps({"input": "é" * 3500})
    assert len(accented.encode()) > 21_000
    reply = client.post("/v1/predict", content=accented,
                        headers={**AUTH, "Content-Type": "application/json"})
    assert reply.status_code == 200, reply.text
    # the longest escapes: 4,000 astral characters are 48 KB as \ud83d\ude00 pairs
    emoji = json.dumps({"input": "😀" * 4000})
    assert client.post("/v1/predict", content=emoji,
                       headers={**AUTH, "Content-Type": "application/json"}).status_code == 200
    # one character too many: 422 in characters, not 413
    long = client.post("/v1/predict", json={"input": "é" * 4001}, headers=AUTH)
    assert long.status_code == 422
    assert "at most 4000 characters" in _one_shape(long)["error"]
    # bytes past the bound (whitespace, not characters of a field): 413, saying bytes
    padded = b'{"input": "x"' + b" " * 70_000 + b"}"
    big = client.post("/v1/predict", content=padded,
                      headers={**AUTH, "Content-Type": "application/json"})
    assert big.status_code == 413
    assert "bytes" in _one_shape(big)["error"]


def test_a_chunked_body_is_refused_at_the_bound_without_being_read_whole(service):
    """64 MB sent chunked (no Content-Length): the 413 comes after a few MB at most (what the
    sockets buffer), and the process never holds the body (tracemalloc sees every thread)."""
    _, _, server = service
    sent = []
    chunk = b"x" * (1 << 20)

    def body():
        yield b'{"input": "'
        for i in range(64):
            sent.append(i)
            yield chunk
        yield b'"}'

    tracemalloc.start()
    try:
        reply = httpx.post(f"{server.url}/v1/predict", content=body(),
                           headers={**AUTH, "Content-Type": "application/json"}, timeout=30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reply.status_code == 413
    assert "content-length" not in reply.request.headers
    assert reply.request.headers["transfer-encoding"] == "chunked"
    assert len(sent) < 64  # the answer came before the whole body was sent
    assert peak < 16 << 20, f"{peak / (1 << 20):.0f} MB allocated while refusing it"
    _one_shape(reply)


# -- 3: refusals are counted, a sample traced; monitoring counts them all ------------------

def test_refusals_are_counted_per_key_and_minute_and_monitoring_counts_them(tight):
    from workbench.monitor import refusal_counts, timeline, traffic, window_metrics

    project, client = tight
    codes = [client.post("/v1/predict", json={"input": f"m {i}"}, headers=AUTH).status_code
             for i in range(33)]
    assert codes[:3] == [200] * 3 and set(codes[3:]) == {429}
    project.store.flush()
    traced = [s for s in spans(project, name="serve.request")
              if s.attributes["http.response.status_code"] == 429]
    if len(traced) == 2:  # the minute turned during the run: one sample in each
        assert len({int(s.start_time // 60) for s in traced}) == 2
    else:
        assert len(traced) == 1
    counted = refusal_counts(project)
    assert {(route, status) for _, _, route, status, _ in counted} == {("/v1/predict", 429)}
    assert sum(n for *_, n in counted) + len(traced) == 30
    assert traffic(project).recent == traffic(project).total == 33
    metrics = window_metrics(project)
    assert metrics["requests"] == 33 and metrics["rate_limited"] == 30
    assert metrics["refused"] == 30 and metrics["answered"] == 3
    line = timeline(project)
    assert line["requests"].sum() == 33 and line["rate_limited"].sum() == 30


# -- 4, 5: one error shape, documented; docs offline and without a key ---------------------

def test_the_openapi_document_declares_the_keys_and_every_error(service):
    _, client, _ = service
    doc = client.get("/openapi.json").json()  # no key needed
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKey"]["name"] == "X-API-Key"
    text = json.dumps(doc)
    assert "HTTPValidationError" not in text and '"detail"' not in text
    expected = {("post", "/v1/predict"): {"400", "401", "402", "413", "422", "429", "500",
                                          "502", "503", "504"},
                ("post", "/v1/feedback"): {"400", "401", "404", "413", "422", "429", "500"},
                ("get", "/v1/info"): {"401", "413", "429", "500"}}
    for (method, path), statuses in expected.items():
        operation = doc["paths"][path][method]
        assert operation["security"] == [{"bearer": []}, {"apiKey": []}]
        errors = {s for s, r in operation["responses"].items() if s >= "400"}
        assert errors == statuses, (path, errors)
        for status in statuses:
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}
    assert "security" not in doc["paths"]["/healthz"]["get"]
    assert "Retry-After" in doc["paths"]["/v1/predict"]["post"]["responses"]["429"]["headers"]
    # and the service answers what the document says
    invalid = client.post("/v1/predict", json={"text": "x"}, headers=AUTH)
    assert invalid.status_code == 422 and set(_one_shape(invalid)) == ERROR_KEYS
    unparsable = client.post("/v1/predict", content=b'{"input": "x"',
                             headers={**AUTH, "Content-Type": "application/json"})
    assert unparsable.status_code == 422 and "not valid JSON" in _one_shape(unparsable)["error"]


def test_docs_are_served_from_this_machine_and_need_no_key(service, monkeypatch):
    import re

    import workbench.serve.docs as serve_docs

    project, client, _ = service
    page = client.get("/docs")
    assert page.status_code == 200
    assert not re.search(r"""(src|href)=["']?https?://""", page.text)  # nothing from a CDN
    for url in re.findall(r"""(?:src|href)=["']([^"']+)""", page.text):
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 1000, url
    assert "/openapi.json" in page.text
    redoc = client.get("/redoc", follow_redirects=True)  # the same docs, no key either
    assert redoc.status_code == 200 and redoc.url.path == "/docs"
    assert client.get("/v1/info").status_code == 401  # what is served still needs a key

    # without Swagger UI's files on this machine: a page that lists the endpoints itself
    monkeypatch.setattr(serve_docs, "_swagger_assets", lambda: None)
    bare = start_server(project, api_keys=[KEY])
    try:
        listed = httpx.get(f"{bare.url}/docs", timeout=30)
    finally:
        bare.stop()
    assert listed.status_code == 200 and "<script" not in listed.text
    for endpoint in ("POST /v1/predict", "POST /v1/feedback", "GET /v1/info"):
        assert endpoint in listed.text


# -- 6: unknown paths are free, keys are exact, long error lists are cut -------------------

def test_unknown_paths_do_not_use_up_the_rate_limit(tight):
    project, client = tight
    for path in ("/v1/embeddings", "/v1/predict/", "/favicon.ico", "/v1/completions") * 5:
        missing = client.get(path, headers=AUTH)
        assert missing.status_code == 404 and "no such path" in _one_shape(missing)["error"]
    wrong = client.get("/v1/predict", headers=AUTH)  # a method the path does not answer
    assert wrong.status_code == 405 and wrong.headers["allow"]
    codes = [client.post("/v1/predict", json={"input": f"m {i}"}, headers=AUTH).status_code
             for i in range(3)]
    assert codes == [200, 200, 200]  # the burst of 3 is whole
    project.store.flush()
    traced = [s for s in spans(project, name="serve.request")
              if s.attributes["http.response.status_code"] == 404]
    assert 1 <= len(traced) <= 2  # a sample, not 20 (2 when the minute turned)
    assert {s.attributes["http.route"] for s in traced} == {"(unknown path)"}


@pytest.mark.parametrize("headers, status", [
    ({"Authorization": b"Bearer " + KEY.encode() + b"\xc2\xa0"}, 401),  # UTF-8 no-break space
    ({"Authorization": b"Bearer " + KEY.encode() + b"\xa0"}, 401),  # Latin-1 no-break space
    ({"Authorization": b"Bearer \xe2\x80\x83" + KEY.encode()}, 401),  # em space before
    ({"X-API-Key": KEY.encode() + b"\xe3\x80\x80"}, 401),  # ideographic space
    ({"Authorization": f"Bearer {KEY}x"}, 401),
    ({"Authorization": f"Bearer {KEY[:-1]}"}, 401),
    ({"Authorization": f"Bearer {KEY}, Bearer {KEY}"}, 401),
    ({"Authorization": f"Basic {KEY}"}, 401),
    ({"Authorization": f"bearer\t{KEY}"}, 200),
    ({"Authorization": f"Bearer {KEY}", "X-API-Key": "second-key-abcdef"}, 401),
    ({"Authorization": f"Bearer {KEY}", "X-API-Key": KEY}, 200),
    ({"Authorization": "Basic dXNlcjpwYXNz", "X-API-Key": KEY}, 200),
])
def test_keys_are_compared_exactly(service, headers, status):
    _, client, _ = service
    reply = client.post("/v1/predict", json={"input": "hello"}, headers=headers)
    assert reply.status_code == status, reply.text
    if status == 401:
        assert reply.headers["www-authenticate"] == "Bearer"
        _one_shape(reply)


def test_duplicate_key_headers_are_refused(service):
    _, client, server = service
    headers = [(b"Authorization", f"Bearer {KEY}".encode()),
               (b"Authorization", b"Bearer second-key-abcdef")]
    reply = httpx.post(f"{server.url}/v1/predict", json={"input": "x"}, headers=headers)
    assert reply.status_code == 401 and "more than one" in _one_shape(reply)["error"]


def test_an_error_lists_ten_problems_and_counts_the_rest(service):
    _, client, _ = service
    reply = client.post("/v1/predict", headers=AUTH,
                        json={"input": "x", **{f"field_{i:04d}": i for i in range(1000)}})
    assert reply.status_code == 422
    body = _one_shape(reply)
    assert len(reply.content) < 2000
    assert body["error"].count("Extra inputs are not permitted") == 10
    assert "and 990 more problems" in body["error"]


# -- 7: hostile inputs -------------------------------------------------------------------------

JSON = {"Content-Type": "application/json"}
HOSTILE = [
    # (what, path, body bytes, extra headers, expected status)
    ("nested 20,000 deep", "/v1/predict", b"[" * 20_000 + b"]" * 20_000, JSON, 400),
    ("nested in a field", "/v1/predict",
     b'{"input": ' + b'{"a": ' * 50 + b"1" + b"}" * 50 + b"}", JSON, 400),
    ("invalid UTF-8", "/v1/predict", b'{"input": "\xff\xfe caf\xe9"}', JSON, 400),
    ("UTF-8-encoded surrogate", "/v1/predict", b'{"input": "\xed\xa0\x80"}', JSON, 400),
    ("Latin-1 declared", "/v1/predict", '{"input": "café"}'.encode("latin-1"),
     {"Content-Type": "application/json; charset=latin-1"}, 400),
    ("UTF-16", "/v1/predict", '{"input": "hi"}'.encode("utf-16"), JSON, 400),
    ("lone surrogate escape", "/v1/predict", b'{"input": "a\\ud800b"}', JSON, 422),
    ("NUL escape", "/v1/predict", b'{"input": "a\\u0000b"}', JSON, 422),
    ("raw control character", "/v1/predict", b'{"input": "a\x01b"}', JSON, 422),
    ("escape character", "/v1/predict", b'{"input": "a\\u001b[31mred"}', JSON, 422),
    ("C1 control", "/v1/predict", '{"input": "a\u0085b"}'.encode(), JSON, 422),
    ("bidi override", "/v1/predict", '{"input": "abc\u202egnp.exe"}'.encode(), JSON, 422),
    ("bidi isolate", "/v1/predict", b'{"input": "a\\u2066b"}', JSON, 422),
    ("bidi in a comment", "/v1/feedback",
     '{"request_id": "abc", "rating": "up", "comment": "\u202eevil"}'.encode(), JSON, 422),
    ("control in a field name", "/v1/predict", b'{"input": "x", "a\\u0000\\u202e": 1}', JSON,
     422),
    ("a 50 KB field name", "/v1/predict",
     b'{"input": "x", "' + b"k" * 50_000 + b'": 1}', JSON, 422),
    ("the key as a field name", "/v1/predict",
     f'{{"input": "x", "{KEY}": 1}}'.encode(), JSON, 422),
    ("the key as the request_id", "/v1/feedback",
     f'{{"request_id": "{KEY}", "rating": "up"}}'.encode(), JSON, 404),
    ("not an object", "/v1/predict", b'["input"]', JSON, 422),
    ("null", "/v1/predict", b"null", JSON, 422),
    ("empty body", "/v1/predict", b"", JSON, 422),
    ("NaN", "/v1/predict", b'{"input": NaN}', JSON, 422),
    ("a number", "/v1/predict", b'{"input": 1e999999}', JSON, 422),
    ("truncated", "/v1/predict", b'{"input": "x', JSON, 422),
    ("30,000 escaped quotes, unterminated", "/v1/predict", b'{"input": "' + b'\\"' * 30_000,
     JSON, 422),
    ("text/plain", "/v1/predict", b'{"input": "x"}', {"Content-Type": "text/plain"}, 422),
    ("form", "/v1/predict", b"input=x", {"Content-Type": "application/x-www-form-urlencoded"},
     422),
    ("rating not in the list", "/v1/feedback", b'{"request_id": "a", "rating": "UP!"}', JSON,
     422),
]


def test_hostile_inputs_get_4xx_in_the_one_shape_and_no_key_anywhere(service):
    project, client, server = service
    for what, path, body, headers, status in HOSTILE:
        reply = client.post(path, content=body, headers={**AUTH, **headers})
        assert reply.status_code == status, (what, reply.status_code, reply.text[:300])
        _one_shape(reply)
        assert len(reply.content) < 3000, what
    # the key in refused bodies (a field name, a request_id) reaches no reply, trace or file
    assert KEY.encode() not in _project_bytes(project)
    project.store.flush()
    for span in spans(project, name="serve.request"):
        assert "Traceback" not in (span.error or "")
        assert 200 <= span.attributes["http.response.status_code"] < 500


def _raw(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes no HTTP client library would send; the status, headers and body."""
    import socket

    host, port = url.removeprefix("http://").rsplit(":", 1)
    data = b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        while True:
            try:
                part = sock.recv(65536)
            except ConnectionResetError:
                break
            if not part:
                break
            data += part
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines)
    return int(status_line.split()[1]), headers, body


def _request(headers: bytes, body: bytes = b'{"input": "hi"}', *,
             path: bytes = b"/v1/predict") -> bytes:
    return (b"POST " + path + b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\n" + headers
            + (b"" if b"content-length" in headers.lower() else
               b"Content-Length: " + str(len(body)).encode() + b"\r\n") + b"\r\n" + body)


def test_header_tricks_are_refused_in_the_one_shape(service):
    _, client, server = service
    key = KEY.encode()
    ours = [  # (raw headers, status): answered by the service, in its error shape
        (b"Authorization: bearer \t " + key + b" \t\r\n", 200),  # header syntax only
        (b"X-API-Key:  " + key + b" \r\n", 200),
        (b"Authorization: Bearer\r\n", 401),
        (b"Authorization: Bearer  \r\n", 401),
        (b"X-API-Key: \r\n", 401),
        (b"Authorization: Bearer " + key + b"\xa0\r\n", 401),
        (b"Authorization: Bearer " + key + b"\r\nX-Api-Key: " + key + b"z\r\n", 401),
        (b"Authorization: Bearer " + key + b"\r\nContent-Length: 999999999\r\n", 413),
    ]
    for headers, status in ours:
        code, answer_headers, body = _raw(server.url, _request(headers))
        assert code == status, (headers, body)
        if status != 200:
            shape = json.loads(body)
            assert {"error", "fix"} <= set(shape) <= ERROR_KEYS and KEY.encode() not in body
    # Header syntax errors are answered by the HTTP server (h11) before the service sees them:
    # 400, plain text, no traceback, and the service keeps serving.
    for broken in (b"Authorization: Bearer\x0b" + key + b"\r\n",
                   b"Authorization: Bearer " + key + b"\r\nContent-Length: 15\r\n"
                   b"Content-Length: 16\r\n",
                   b"Authorization: Bearer " + key + b"\r\nContent-Length: -1\r\n"):
        code, _, body = _raw(server.url, _request(broken))
        assert code == 400 and b"Traceback" not in body and KEY.encode() not in body, broken
    # an unknown path with no key is refused for the key, before anything else
    assert client.get("/admin").status_code == 401
    wrong = client.post("/healthz", json={})
    assert wrong.status_code == 405 and set(_one_shape(wrong)) == ERROR_KEYS
    assert client.post("/v1/predict", json={"input": "still here"},
                       headers=AUTH).status_code == 200
