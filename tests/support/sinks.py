"""A local HTTP sink: the other end of a notifier (Slack, PagerDuty, a webhook), dead or alive on demand."""
from __future__ import annotations

import threading
import time

from fastapi import FastAPI, Request, Response


class Sink:
    """A local HTTP sink recording what arrives per path; `fail` (every path) or `fail_paths` make it answer 503
    (a dead endpoint)."""

    def __init__(self):
        self.got: dict[str, list] = {}
        self.headers: dict[str, list] = {}
        self.fail = False
        self.fail_paths: set[str] = set()
        self.reject_paths: set[str] = set()
        self.app = FastAPI()
        self.lock = threading.Lock()

        @self.app.post("/{path}")
        async def receive(path: str, request: Request):
            if self.fail or path in self.fail_paths:
                return Response(status_code=503)
            if path in self.reject_paths:
                self.rejected = getattr(self, "rejected", 0) + 1
                return Response(status_code=400)
            body = await request.json()
            with self.lock:
                self.got.setdefault(path, []).append(body)
                self.headers.setdefault(path, []).append(dict(request.headers))
            return Response(status_code=202 if path == "pd" else 200)

    def wait(self, path: str, n: int = 1, timeout: float = 20.0) -> list:
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if len(self.got.get(path, [])) >= n:
                    return list(self.got[path])
            time.sleep(0.05)
        raise AssertionError(f"{path}: {len(self.got.get(path, []))} of {n} deliveries after {timeout}s")
