"""HTTP for the provider clients: bounded retries with backoff on timeouts, 429 and 5xx;
clear errors on 401/403 and other 4xx. Secrets never appear in messages."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Final

import httpx

RETRY_STATUS: Final = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S: Final = 60.0


class ProviderError(RuntimeError):
    """A provider request that failed for good (after retries, or not retryable)."""

    def __init__(self, provider: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.status = status


class ProviderAuthError(ProviderError):
    """401/403: the token or login is missing, wrong or lacks access to this endpoint."""


class Fetcher:
    """GETs with retries. ``sleep`` is injectable so backoff can be observed in tests."""

    def __init__(
        self,
        provider: str,
        *,
        timeout_s: float = 30.0,
        max_attempts: int = 4,
        backoff_s: float = 1.0,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.provider = provider
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.client = client or httpx.Client(timeout=timeout_s, follow_redirects=False)
        self.sleep = sleep
        self.attempts = 0  # total requests sent (for logs and tests)

    def get(
        self,
        url: str,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
    ) -> bytes:
        """The response body of a 2xx reply; ProviderError otherwise."""
        last = ""
        for attempt in range(1, self.max_attempts + 1):
            self.attempts += 1
            try:
                response = self.client.get(url, params=params, headers=headers, auth=auth)
            except httpx.TimeoutException:
                last = f"timed out after {self.client.timeout.read}s"
                self._backoff(attempt, None)
                continue
            except httpx.TransportError as exc:
                last = f"connection failed ({type(exc).__name__})"
                self._backoff(attempt, None)
                continue
            status = response.status_code
            if 200 <= status < 300:
                return response.content
            where = f"GET {response.request.url.copy_with(query=None)}"
            if status in (401, 403):
                raise ProviderAuthError(
                    self.provider,
                    f"{where} returned {status}: check the token/login and the plan's access "
                    f"({_snippet(response)})",
                    status,
                )
            if status not in RETRY_STATUS:
                raise ProviderError(
                    self.provider, f"{where} returned {status} ({_snippet(response)})", status
                )
            last = f"{where} returned {status}"
            self._backoff(attempt, response.headers.get("retry-after"))
        raise ProviderError(self.provider, f"gave up after {self.max_attempts} attempts: {last}")

    def _backoff(self, attempt: int, retry_after: str | None) -> None:
        if attempt >= self.max_attempts:
            return
        delay = self.backoff_s * 2 ** (attempt - 1)
        if retry_after is not None:
            # An HTTP-date Retry-After is not parsed: the exponential delay stays.
            with contextlib.suppress(ValueError):
                delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER_S))
        self.sleep(delay)

    def close(self) -> None:
        """Close the underlying connection pool."""
        self.client.close()


def _snippet(response: httpx.Response) -> str:
    text = response.text[:200].replace("\n", " ")
    return f"body {text!r}" if text else "empty body"
