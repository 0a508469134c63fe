"""An OpenAI-compatible chat-completions server on loopback, for the gateway's litellm route.

It speaks the protocol (JSON replies and server-sent-event streams with usage) and each model
name scripts a behaviour: ``flaky`` answers 429 twice then works, ``limited`` always 429,
``down`` always 500, ``slow`` waits 2 s; any other name answers "pong: <last message>".
Used by tests/test_gateway_litellm.py and benchmarks/bench_gateway.py.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def handle_error(self, request, client_address):
        pass  # a client that gave up (the timeout test) is expected, not news

    def count(self, model: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r["model"] == model)


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *args):
        pass

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.requests.append(body)
        model = body["model"]
        seen = self.server.count(model)
        if model == "flaky" and seen <= 2 or model == "limited":
            return self._json(429, {"error": {"message": "slow down", "type": "rate_limit"}})
        if model == "down":
            return self._json(500, {"error": {"message": "boom", "type": "server_error"}})
        if model == "slow":
            time.sleep(2)
        text = "pong: " + body["messages"][-1]["content"]
        usage = {"prompt_tokens": 7, "completion_tokens": len(text.split()),
                 "total_tokens": 7 + len(text.split())}
        if not body.get("stream"):
            return self._json(200, {
                "id": "c1", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": usage})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()

        def event(choices, **extra):
            chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 0,
                     "model": model, "choices": choices, **extra}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()

        words = text.split(" ")
        for i, word in enumerate(words):
            piece = word + (" " if i < len(words) - 1 else "")
            event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
        event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        event([], usage=usage)
        self.wfile.write(b"data: [DONE]\n\n")


def start() -> Server:
    """A server answering on a background thread; ``shutdown()`` and ``server_close()`` it."""
    srv = Server()
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    return srv
