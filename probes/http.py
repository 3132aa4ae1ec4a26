"""HTTP synthetic check: method, URL, expected status and body match, latency, TLS certificate expiry."""
from __future__ import annotations

import re
import socket
import ssl
import time
from urllib.parse import urlparse

import httpx
from pydantic import BaseModel, ConfigDict

from probes.base import Probe, ProbeResult, Sample


def tls_days_left(host: str, port: int, timeout: float = 10, verify: bool = True) -> float:
    """Days until the server certificate's notAfter."""
    ctx = ssl.create_default_context() if verify else ssl._create_unverified_context()  # noqa: S323
    with socket.create_connection((host, port), timeout=timeout) as sock:
        with ctx.wrap_socket(sock, server_hostname=host) as tls:
            not_after: float
            if verify:
                info = tls.getpeercert()
                if not info:
                    raise ssl.SSLError("the server sent no certificate")
                not_after = ssl.cert_time_to_seconds(str(info["notAfter"]))
            else:                                  # unverified peers only give the DER bytes
                from cryptography import x509
                der = tls.getpeercert(binary_form=True)
                if not der:
                    raise ssl.SSLError("the server sent no certificate")
                not_after = x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()
    return (not_after - time.time()) / 86400


class HttpProbe(Probe["HttpProbe.Settings"]):
    """One request per run; `http_check_success` is 1 when status and body match."""
    type = "http"

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        url: str
        method: str = "GET"
        expect_status: list[int] = [200]
        body_regex: str | None = None
        headers: dict[str, str] = {}
        body: str | None = None
        verify_tls: bool = True
        timeout_seconds: float = 10.0

    def secrets(self) -> list[str]:
        return super().secrets() + [v for k, v in self.settings.headers.items() if k.lower() == "authorization"]

    def run(self) -> ProbeResult:
        s = self.settings
        labels = {"url": s.url}
        out = ProbeResult()
        t0 = time.perf_counter()
        try:
            r = httpx.request(s.method, s.url, headers=s.headers, content=s.body, timeout=s.timeout_seconds,
                              verify=s.verify_tls)
        except httpx.HTTPError as e:
            out.samples += [Sample("http_check_success", 0, labels), Sample("http_check_up", 0, labels)]
            out.notes.append(f"request failed: {type(e).__name__}: {str(e)[:120]}")
            return out
        latency = time.perf_counter() - t0
        ok = r.status_code in s.expect_status
        if ok and s.body_regex and not re.search(s.body_regex, r.text):
            ok = False
            out.notes.append(f"body does not match {s.body_regex!r}")
        if r.status_code not in s.expect_status:
            out.notes.append(f"status {r.status_code}, expected {s.expect_status}")
        out.samples += [Sample("http_check_success", 1 if ok else 0, labels), Sample("http_check_up", 1, labels),
                        Sample("http_check_status_code", r.status_code, labels),
                        Sample("http_check_latency_seconds", latency, labels)]
        u = urlparse(s.url)
        if u.scheme == "https":
            try:
                days = tls_days_left(u.hostname or "", u.port or 443, s.timeout_seconds, s.verify_tls)
                out.samples.append(Sample("http_check_tls_days_left", days, labels))
            except (OSError, ssl.SSLError) as e:
                out.notes.append(f"TLS certificate not read: {type(e).__name__}")
        return out
