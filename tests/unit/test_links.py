"""Symbolic links in a photo folder, listed and read without Spark (what executors run)."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from lookalike.catalog import sources
from lookalike.catalog.sources import (
    ImageLimits,
    folder_batch,
    folder_item_id,
    relative_to_folder,
    walk_files,
    walk_local,
)
from lookalike.images import normalise_image
from tests.support.builders import write_photo


@pytest.fixture
def linked(tmp_path: Path) -> Path:
    """``photos/`` beside ``assets/``: own photos, links into ``assets/`` (a file and a whole
    folder), a link inside the folder, a dangling link, a two-link loop, a self loop and a
    folder link to the folder above it."""
    assets, root = tmp_path / "assets", tmp_path / "photos"
    for i in range(3):
        write_photo(assets / f"a{i}.png", seed=i)
        write_photo(assets / "hats" / f"h{i}.png", seed=10 + i)
        write_photo(root / "Shoes" / f"own{i}.png", seed=20 + i)
    shoes = root / "Shoes"
    (shoes / "out.png").symlink_to("../../assets/a0.png")
    (shoes / "in.png").symlink_to("own1.png")
    (shoes / "gone.png").symlink_to("no-such.png")
    (shoes / "loop-a.png").symlink_to("loop-b.png")
    (shoes / "loop-b.png").symlink_to("loop-a.png")
    (shoes / "self.png").symlink_to("self.png")
    (shoes / "up").symlink_to("..")
    (root / "Hats").symlink_to(assets / "hats")
    return root


def _listing(root: Path, **kw) -> dict[str, str | None]:
    rows = walk_local(str(root), str(root), **kw)
    assert all(failure is None for _, _, failure in rows)
    return {os.path.relpath(path, root): reason for path, reason, _ in rows}


def test_links_are_followed_and_broken_ones_rejected_with_their_reason(linked):
    listing = _listing(linked)
    readable = sorted(k for k, reason in listing.items() if reason is None)
    assert readable == [
        "Hats/h0.png",  # a folder link out of the folder: walked, under its own path
        "Hats/h1.png",
        "Hats/h2.png",
        "Shoes/in.png",
        "Shoes/out.png",
        "Shoes/own0.png",
        "Shoes/own1.png",
        "Shoes/own2.png",
    ]
    assert listing["Shoes/gone.png"] == "dangling link: its target no-such.png does not exist"
    assert listing["Shoes/loop-a.png"] == "link loop: its target loop-b.png leads back to it"
    assert listing["Shoes/self.png"] == "link loop: its target self.png leads back to it"
    assert listing["Shoes/up"] == f"link loop: its target {linked} is a folder that contains it"
    assert len(listing) == 13  # every entry accounted for, nothing walked twice


def test_links_out_of_the_folder_are_refused_when_the_setting_says_so(linked):
    listing = _listing(linked, follow_links_out=False)
    assets = linked.parent / "assets"
    assert listing["Shoes/out.png"] == (
        f"link leaves the folder: its target is {assets / 'a0.png'} "
        "(LOOKALIKE_INGEST_FOLLOW_LINKS_OUT=false)"
    )
    assert listing["Hats"].startswith(f"link leaves the folder: its target is {assets / 'hats'}")
    assert listing["Shoes/in.png"] is None  # inside the folder: still read through
    assert not any(k.startswith("Hats/") for k in listing)


def test_a_link_into_the_folder_through_an_outside_path_is_inside(tmp_path):
    root = tmp_path / "photos"
    write_photo(root / "Shoes" / "a.png", seed=1)
    (tmp_path / "via").symlink_to(root / "Shoes")
    (root / "Shoes" / "b.png").symlink_to(tmp_path / "via" / "a.png")
    assert _listing(root, follow_links_out=False)["Shoes/b.png"] is None


def test_a_name_that_is_not_utf8_is_rejected_not_fatal(tmp_path):
    root = tmp_path / "photos"
    write_photo(root / "Shoes" / "ok.png", seed=1)
    bad = os.path.join(os.fsencode(root / "Shoes"), b"bad\xff.png")
    with open(bad, "wb") as f:
        f.write((root / "Shoes" / "ok.png").read_bytes())
    listing = _listing(root)
    assert listing == {"Shoes/bad\ufffd.png": "name is not valid UTF-8", "Shoes/ok.png": None}
    pa.array(list(listing))  # every path is a valid Arrow string


def test_walk_files_lists_links_by_their_own_paths(linked):
    paths = walk_files(str(linked))
    assert str(linked / "Shoes" / "out.png") in paths and str(linked / "Hats" / "h0.png") in paths


def test_relative_paths_never_resolve_links(linked):
    link = str(linked / "Shoes" / "out.png")
    assert relative_to_folder(link, str(linked)) == "Shoes/out.png"
    assert relative_to_folder("/elsewhere/x.png", str(linked)) is None
    assert relative_to_folder("s3://b/land/Shoes/x.png", "s3://b/land/") == "Shoes/x.png"


def _plan(paths: list[str], reasons: list[str | None] | None = None) -> pa.RecordBatch:
    n = len(paths)
    data = {"path": paths, "item_id": [None] * n, "category_name": [None] * n}
    data |= {"split": [None] * n, "reason": reasons or [None] * n}
    return pa.RecordBatch.from_pydict(data, schema=pa.schema([(k, pa.string()) for k in data]))


def _batch(root: Path, plan: pa.RecordBatch) -> list[dict]:
    return folder_batch(
        plan, root=str(root), source="s", limits=ImageLimits(), test_fraction=0.1
    ).to_pylist()


def test_a_link_is_read_through_and_keeps_its_own_path_as_id(linked):
    rows = walk_local(str(linked), str(linked))
    out = {
        r["path"]: r
        for r in _batch(linked, _plan([p for p, _, _ in rows], [r for _, r, _ in rows]))
    }
    link = out[str(linked / "Shoes" / "out.png")]
    target = normalise_image((linked.parent / "assets" / "a0.png").read_bytes())
    assert (link["item_id"], link["category_name"], link["reason"]) == ("Shoes-out", "Shoes", None)
    assert link["content_hash"] == target.content_hash
    assert out[str(linked / "Hats" / "h1.png")]["item_id"] == "Hats-h1"
    gone = out[str(linked / "Shoes" / "gone.png")]
    assert gone["item_id"] == folder_item_id("Shoes/gone.png") and gone["image"] is None
    assert gone["reason"].startswith("dangling link")
    assert all(r["failure"] is None for r in out.values())


def test_an_unexpected_error_on_one_file_is_that_files_failure(linked, monkeypatch):
    def flaky(data: bytes, **limits):
        if data == (linked / "Shoes" / "own2.png").read_bytes():
            raise RuntimeError("decoder bug\non two lines")
        return normalise_image(data, **limits)

    monkeypatch.setattr(sources, "normalise_image", flaky)
    paths = [str(linked / "Shoes" / f"own{i}.png") for i in range(3)]
    out = _batch(linked, _plan(paths))
    assert [r["failure"] for r in out] == [None, None, "RuntimeError: decoder bug on two lines"]
    assert out[0]["content_hash"] and out[2]["reason"] is None


def test_a_batch_that_fails_as_a_whole_fails_each_of_its_files(linked, monkeypatch):
    def broken(batch, **options):
        raise KeyError("oops")

    monkeypatch.setattr(sources, "folder_batch", broken)
    paths = [str(linked / "Shoes" / "own0.png"), str(linked / "Shoes" / "in.png")]
    out = sources._guarded_batch(_plan(paths), root=str(linked)).to_pylist()
    assert [(r["path"], r["failure"]) for r in out] == [
        (p, "KeyError: 'oops' (in a batch of 2 files)") for p in paths
    ]


def test_a_folder_that_cannot_be_listed_is_rejected_by_name(tmp_path, monkeypatch):
    root = tmp_path / "photos"
    write_photo(root / "Shoes" / "a.png", seed=1)
    (root / "Locked").mkdir()
    real_scandir = os.scandir

    def scandir(path):
        if str(path).endswith("Locked"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(sources.os, "scandir", scandir)
    listing = _listing(root)
    assert listing == {"Locked": "unreadable folder: Permission denied", "Shoes/a.png": None}
