"""Readiness probe of the deployed recommendation service, over HTTP.

The service follows the registry alias on its own; after publishing a bundle, a workflow waits
here until the service answers with that version, so "published" means "served".
"""

from __future__ import annotations

import time
from typing import Any


def confirm_service(
    expected_bundle: str, url: str | None, timeout: float = 300, every: float = 2
) -> dict[str, Any]:
    """Wait until the service at ``url`` reports ``expected_bundle``; raises on timeout."""
    import httpx

    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{url}/v1/version", timeout=5)
            if r.status_code == 200:
                seen = r.json()
                if seen.get("bundle_version") == str(expected_bundle):
                    return seen
        except httpx.HTTPError as e:
            seen = {"error": str(e)}
        time.sleep(every)
    raise TimeoutError(f"service {url} still reports {seen} after {timeout:.0f} s")
