"""Steps of the catalogue refresh DAG (``lookalike_catalog_refresh``) between its Spark jobs.

Skip the re-index when the catalogue has not moved past the served index's watermark, and
publish the index version a re-index wrote as the production bundle. The refresh follows what
is served, never the newest index version on the store: an index written but not published (a
failed promotion's, ``index update --no-publish``) is neither its change check nor its base, so
a refresh only ever publishes the champion encoder's vectors, and republishes whenever the
served bundle is behind the catalogue. Heavy libraries are
imported inside the functions, so a DAG file that imports this parses fast.
"""

from __future__ import annotations

from typing import Any

from lookalike.config import Settings, get_settings


def catalog_changed_since_served(settings: Settings | None = None) -> bool:
    """True when the catalogue moved past the served index version's watermark (the latest
    index version's while nothing is served yet)."""
    from lookalike.catalog.table import table_version
    from lookalike.index.versions import latest_name, read_manifest, served_name

    settings = settings or get_settings()
    base = served_name(settings) or latest_name(settings)
    current = table_version(settings.catalog_uri)
    if base is None or current is None:
        return current is not None
    return current > int(read_manifest(settings, base)["catalog_version"])


def publish_index(summary: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """Publish the index version a re-index wrote (none written: nothing to publish). When
    a promotion published a newer index meanwhile, this version is superseded and not
    published (no error): the next refresh updates from the newer index's watermark, so
    whatever catalogue changes it lacks are added then."""
    from lookalike.index.versions import find_version
    from lookalike.similarity.registry import BundleSuperseded, publish_bundle

    settings = settings or get_settings()
    if not summary.get("index_version"):
        return {"published": False, "reason": f"no new index version ({summary.get('kind')})"}
    # by name, not by path: the job that wrote the version may have run on another host
    try:
        result = publish_bundle(settings, find_version(settings, summary["index_version"]))
    except BundleSuperseded as e:
        return {"published": False, "reason": str(e)}
    return {"published": True} | result.to_dict()
