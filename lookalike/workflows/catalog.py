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

from typing import TYPE_CHECKING, Any

from lookalike.config import Settings, get_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


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


#: Up to this many changed items are embedded on the driver, in seconds, without a Spark pass
#: over the catalogue; more (a big drop of photos) go to the executors.
DRIVER_EMBED_MOST = 2000


def embed_for_serving(
    spark: SparkSession | None, settings: Settings | None = None
) -> dict[str, Any] | None:
    """Embed the catalogue's latest version with the served bundle's encoder (one Delta commit
    to ``embeddings``, only the items whose photo changed): the whole update a landed photo
    needs; every service process then applies it from the change feed.

    Under the index writers' lease, so it never commits while a snapshot is built (a snapshot
    records the embeddings version it holds), and the catalogue version is read once the
    lease is held: never older than what a snapshot built meanwhile indexed. Without a Spark
    session (the fresh path's driver task), None when the changes are too many for the
    driver: nothing is written, and the Spark job's turn comes."""
    from lookalike import locks
    from lookalike.index.versions import read_manifest, served_name
    from lookalike.registry.encoders import fetch_encoder
    from lookalike.similarity.embeddings import embed_catalog, embed_changed

    settings = settings or get_settings()
    base = served_name(settings)
    if base is None:
        return {"skipped": "no bundle served yet: nothing follows the change feed"}
    encoder = fetch_encoder(settings, read_manifest(settings, base)["encoder"]["version"])
    with locks.writer_lease(settings, locks.INDEXES, "embed the catalogue for the served index"):
        summary = embed_changed(settings, encoder, most=DRIVER_EMBED_MOST)
        if summary is None:  # many changes: the executors embed them
            if spark is None:
                return None
            summary = embed_catalog(spark, settings, encoder)
    return {"served_index": base} | summary.to_dict()


def snapshot_due(settings: Settings | None = None) -> bool:
    """True when the catalogue's net changes since the served index's watermark reach
    ``index_snapshot_share`` of its items: time for a full, recall-checked snapshot instead
    of more changes applied in place."""
    from lookalike.catalog.changes import catalog_changes
    from lookalike.index.versions import read_manifest, served_name

    settings = settings or get_settings()
    base = served_name(settings)
    if base is None:
        return False
    manifest = read_manifest(settings, base)
    changes = catalog_changes(settings.catalog_uri, int(manifest["catalog_version"]), ["item_id"])
    changed = changes.inserts.num_rows + changes.updates.num_rows + len(changes.deletes)
    return changed >= settings.index_snapshot_share * max(1, int(manifest["size"]))


#: Up to this many changed landing files are ingested on the driver (no Spark job).
DRIVER_INGEST_MOST = 500


def fresh_ingest(settings: Settings | None = None) -> dict[str, Any]:
    """The fresh path's ingest of the landing store, on the driver when it can be: the files
    changed since the last ingested listing are ingested and embedded (one commit to each
    table), and the listing is marked ingested. Returns what it did, with ``spark: True``
    (nothing written, the listing recorded as ``listed``) when the Spark job must do it."""
    from lookalike import storage
    from lookalike.catalog import landing
    from lookalike.catalog.small_ingest import ingest_small

    settings = settings or get_settings()
    root = str(settings.landing_uri)
    storage.ensure_dir(root)
    files = landing.list_files(root)
    seen = landing.listing_of(files)
    before = landing.read_files(settings.state_uri, landing.INGESTED)
    ingested = ingest_small(settings, root, "landing", files, before, DRIVER_INGEST_MOST)
    embedded = embed_for_serving(None, settings) if ingested is not None else None
    out: dict[str, Any] = {"fingerprint": seen.fingerprint, "files": seen.files}
    if ingested is None or embedded is None:
        landing.write_files(settings.state_uri, "listed", files)
        return out | {"spark": True}
    landing.mark_ingested(settings.state_uri, files)
    return out | {"spark": False, "ingest": ingested.to_dict(), "embed": embedded}


def mark_listed_ingested(settings: Settings | None = None) -> dict[str, Any]:
    """After the Spark job ingested the listing ``fresh_ingest`` recorded as ``listed``: mark
    it ingested, its files too, so the next run can take the driver path. (The Spark job
    read the store after that listing: whatever changed since is announced again.)"""
    from dataclasses import asdict

    from lookalike.catalog import landing

    settings = settings or get_settings()
    files = landing.read_files(settings.state_uri, "listed")
    if files is None:
        raise FileNotFoundError(
            f"no listing recorded at {landing.files_uri(settings.state_uri, 'listed')}: "
            "nothing to mark (the trigger announces the store again)"
        )
    return asdict(landing.mark_ingested(settings.state_uri, files))
