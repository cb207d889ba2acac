"""Published index versions under ``Settings.index_uri``: list, publish, fetch, prune.

A version is a folder ``v000001``... holding the searcher files, vectors, item rows and
``manifest.json`` (with every file's checksum). It exists for readers only once its manifest
does, and the manifest is written last:
- on a local store, the version is written into a temp folder renamed into place in one step;
- on an object store, its files are uploaded first and the manifest after them, so a build
  that dies half-way leaves files that no reader sees (the next publish of that name clears
  them). Versions are published by one writer at a time (builds and updates hold the index
  writers' lease, ``lookalike.locks``); a name whose manifest exists already is refused,
  never overwritten. A local build that died before its rename leaves a hidden temp folder,
  removed by the next publish.
Readers get a local folder: the version itself on a local store, else a copy in
``LOOKALIKE_HOME/cache/indexes`` whose checksums are verified before it is used.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lookalike import storage
from lookalike.config import Settings
from lookalike.faults import crash_point
from lookalike.index import scann_index as sx


class IndexVersionNotFound(sx.IndexVersionError):
    """No published index version answers to the name asked for."""


def _label(name: str) -> str:
    return f"v{int(name):06d}" if name.isdigit() else name


def _remote(settings: Settings) -> bool:
    return not storage.is_local(settings.index_uri)


def list_versions(settings: Settings) -> list[str]:
    """Names of the published versions (their manifest exists), oldest first."""
    root = settings.index_uri
    names = [
        storage.name(e.uri)
        for e in storage.listdir(root)
        if e.is_dir and storage.name(e.uri).startswith("v")
    ]
    return [n for n in sorted(names) if storage.is_file(storage.join(root, n, sx.MANIFEST))]


def latest_name(settings: Settings) -> str | None:
    """The newest published version's name, or None before the first build."""
    versions = list_versions(settings)
    return versions[-1] if versions else None


def next_name(settings: Settings) -> str:
    """The name the next published version gets."""
    latest = latest_name(settings)
    return f"v{int(latest[1:]) + 1 if latest else 1:06d}"


def read_manifest(settings: Settings, name: str) -> dict[str, Any]:
    """A published version's manifest, read from the store (no download of the rest)."""
    uri = storage.join(settings.index_uri, _label(name), sx.MANIFEST)
    try:
        return json.loads(storage.read_bytes(uri))
    except FileNotFoundError:
        raise IndexVersionNotFound(
            f"no index version {_label(name)!r} under {settings.index_uri}"
        ) from None


_FETCH_LOCK = threading.Lock()


def local_copy(settings: Settings, name: str) -> Path:
    """A local folder holding published version ``name``, checksums verified: the version
    itself on a local store, else this host's cached copy (downloaded once)."""
    label = _label(name)
    if not _remote(settings):
        path = storage.local_path(storage.join(settings.index_uri, label))
        if not (path / sx.MANIFEST).is_file():
            raise IndexVersionNotFound(f"no index version {label!r} under {settings.index_uri}")
        return path
    dest = settings.cache_dir / "indexes" / label
    if (dest / sx.MANIFEST).is_file():  # fetched before: no round trip to the store
        return dest
    manifest = read_manifest(settings, label)
    with _FETCH_LOCK:
        if (dest / sx.MANIFEST).is_file():
            return dest
        tmp = dest.with_name(f".{label}.tmp-{os.getpid()}-{threading.get_ident()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for rel in [*manifest.get("files", {}), sx.MANIFEST]:
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(storage.read_bytes(storage.join(settings.index_uri, label, rel)))
        sx.verify_version(tmp)  # a corrupt upload never takes the final name
        os.replace(tmp, dest)
    return dest


def find_version(settings: Settings, name: str | None) -> Path:
    """A published version by name (``v000003`` or ``3``), or the latest, as a local folder."""
    if name is None:
        name = latest_name(settings)
        if name is None:
            raise IndexVersionNotFound("no index version yet: run `lookalike index build`")
    return local_copy(settings, name)


def served_name(settings: Settings) -> str | None:
    """The index version the served bundle holds (``Settings.serve_alias`` of the recommender
    model, its index tag), or None while nothing is served. What the refresh follows: an
    index version written but never published (a failed promotion's, an update run with
    ``--no-publish``) is never the base of what is served next."""
    from lookalike.registry.aliases import INDEX_VERSION_TAG
    from lookalike.registry.mlflow_setup import registry_client
    from lookalike.registry.versions import find_version

    mv = find_version(
        settings.recommender_model_name, settings.serve_alias, client=registry_client(settings)
    )
    return None if mv is None else (mv.tags or {}).get(INDEX_VERSION_TAG)


def base_version(settings: Settings, follow: str) -> Path | None:
    """The version an update starts from: ``follow`` is ``served`` (the served bundle's
    index, or the latest while nothing is served), ``latest``, or a version name."""
    if follow == "latest":
        return latest_version(settings)
    if follow != "served":
        return find_version(settings, follow)
    name = served_name(settings)
    if name is None:
        return latest_version(settings)
    if name not in list_versions(settings):
        raise IndexVersionNotFound(
            f"index {name}, which {settings.serve_alias!r} serves, is no longer on the store: "
            "run `lookalike index build` for the champion encoder"
        )
    return local_copy(settings, name)


def latest_version(settings: Settings) -> Path | None:
    """The newest published version as a local folder, or None before the first build."""
    name = latest_name(settings)
    return local_copy(settings, name) if name else None


def publish(
    settings: Settings, write: Callable[[Path, str], dict[str, Any]]
) -> tuple[str, Path, dict[str, Any]]:
    """Publish the next version: ``write(folder, name)`` writes it (with
    ``scann_index.write_version``) into a local folder that must not exist yet and returns
    its manifest; returns (name, local folder, manifest). On an object store the files are uploaded,
    then the manifest (see the module docstring)."""
    name = next_name(settings)
    if not _remote(settings):
        storage.ensure_dir(settings.index_uri)
        root = storage.local_path(settings.index_uri)
        for stale in root.glob(".v*.tmp-*"):  # what a build that died before its rename left
            shutil.rmtree(stale, ignore_errors=True)
        path = root / name
        return name, path, write(path, name)
    target = storage.join(settings.index_uri, name)
    if storage.is_file(storage.join(target, sx.MANIFEST)):
        raise sx.IndexVersionError(f"index version {name} already published at {target}")
    local = settings.cache_dir / "indexes" / name
    shutil.rmtree(local, ignore_errors=True)
    manifest = write(local, name)
    storage.remove_tree(target)  # what a build that died half-way left (never visible)
    files = list(manifest.get("files", {}))
    for i, rel in enumerate(files):
        if i == len(files) // 2:
            crash_point("index.half_uploaded")
        storage.write_bytes(storage.join(target, rel), (local / rel).read_bytes())
    storage.write_bytes(storage.join(target, sx.MANIFEST), (local / sx.MANIFEST).read_bytes())
    return name, local, manifest


def prune_versions(settings: Settings, keep: int | None = None) -> list[str]:
    """Delete all but the newest ``keep`` versions and the served one (what the next update
    starts from), on the store and in this host's cache (bundles hold their own copies)."""
    keep = keep or settings.index_keep_versions
    served = served_name(settings)
    old = [name for name in list_versions(settings)[:-keep] if name != served]
    for name in old:
        storage.remove_file(storage.join(settings.index_uri, name, sx.MANIFEST))  # hidden first
        storage.remove_tree(storage.join(settings.index_uri, name))
        shutil.rmtree(settings.cache_dir / "indexes" / name, ignore_errors=True)
    return old
