"""Steps of the catalogue refresh DAG (``lookalike_catalog_refresh``) between its Spark jobs.

Skip the re-index when the catalogue has not moved past the latest index's watermark, and
publish the index version a re-index wrote as the production bundle. Heavy libraries are
imported inside the functions, so a DAG file that imports this parses fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lookalike.config import Settings, get_settings


def catalogue_changed_since_index(settings: Settings | None = None) -> bool:
    """True when the catalogue moved past the latest index version's watermark."""
    from lookalike.catalog.table import table_version
    from lookalike.index.builder import latest_version
    from lookalike.index.scann_index import read_manifest

    settings = settings or get_settings()
    latest = latest_version(settings)
    current = table_version(settings.catalog_path)
    if latest is None or current is None:
        return current is not None
    return current > int(read_manifest(latest)["catalog_version"])


def publish_index(summary: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """Publish the index version a re-index wrote (none written: nothing to publish)."""
    from lookalike.bundle.registry import publish_bundle

    settings = settings or get_settings()
    if not summary.get("path"):
        return {"published": False, "reason": f"no new index version ({summary.get('kind')})"}
    result = publish_bundle(settings, Path(summary["path"]))
    return {"published": True} | result.to_dict()
