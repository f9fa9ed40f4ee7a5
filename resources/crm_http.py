"""One HTTP call to a CRM's API, retried the way its rate limits ask: 429 and 5xx (and whatever
else the caller names retryable, e.g. Salesforce's REQUEST_LIMIT_EXCEEDED) wait `Retry-After`
when the API sends it, else an exponential backoff, capped; a connection error is retried too.
Shared by the HubSpot and Salesforce destinations."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests


@dataclass
class Retry:
    max_attempts: int = 6
    backoff: float = 1.0  # seconds before the 2nd attempt; doubles after each
    max_delay: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    waits: list[float] = field(default_factory=list)  # every wait taken (the sync's figures)

    def delay(self, attempt: int, response: requests.Response | None) -> float:
        after = response.headers.get("Retry-After") if response is not None else None
        if after is not None:
            try:
                return min(max(float(after), 0.0), self.max_delay)
            except ValueError:
                pass
        return min(self.backoff * 2 ** (attempt - 1), self.max_delay)


class Exhausted(RuntimeError):
    """Every attempt was refused or failed: the caller marks the batch's records failed (they
    are retried by the next sync)."""


def call(
    session: requests.Session,
    method: str,
    url: str,
    retry: Retry,
    *,
    json: Any = None,
    timeout: float = 60.0,
    retryable: Callable[[requests.Response], bool] = lambda r: False,
) -> requests.Response:
    """The first answer that is not a retryable refusal; `Exhausted` after the last attempt."""
    last = ""
    for attempt in range(1, retry.max_attempts + 1):
        response = None
        try:
            response = session.request(method, url, json=json, timeout=timeout)
        except (requests.ConnectionError, requests.Timeout) as e:
            last = f"{type(e).__name__}: {e}"
        else:
            if not (
                response.status_code == 429 or response.status_code >= 500 or retryable(response)
            ):
                return response
            last = f"HTTP {response.status_code}: {response.text[:300]}"
        if attempt < retry.max_attempts:
            wait = retry.delay(attempt, response)
            retry.waits.append(wait)
            retry.sleep(wait)
    raise Exhausted(
        f"{method} {url.split('?')[0]} failed after {retry.max_attempts} attempts: {last}"
    )
