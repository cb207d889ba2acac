"""When the landing store is news: its listing's fingerprint, and the fired/ingested markers."""

from __future__ import annotations

import os

from lookalike.catalog.landing import (
    FIRED,
    INGESTED,
    Listing,
    Marker,
    due,
    listing,
    read_marker,
    write_marker,
)


def test_an_addition_a_replacement_and_a_removal_each_change_the_listing(tmp_path):
    land = tmp_path / "landing"
    assert listing(str(land)) == listing(str(land))  # missing: empty, and stable
    (land / "Sneaker").mkdir(parents=True)
    first = listing(str(land))
    assert first.files == 0
    photo = land / "Sneaker" / "a.png"
    photo.write_bytes(b"one")
    added = listing(str(land))
    assert added.files == 1 and added.fingerprint != first.fingerprint
    photo.write_bytes(b"two!")
    os.utime(photo, (1, 1))
    replaced = listing(str(land))
    assert replaced.fingerprint not in {added.fingerprint, first.fingerprint}
    photo.unlink()
    assert listing(str(land)).fingerprint == first.fingerprint


def test_a_listing_is_announced_once_until_ingested_then_again_when_it_is_stale():
    seen = Listing("abc", 3)
    ingested = Marker("old", 2, 0.0)
    assert due(seen, ingested, None, now=100.0, refire_seconds=60)
    fired = Marker("abc", 3, 100.0)
    assert not due(seen, ingested, fired, now=130.0, refire_seconds=60)  # announced already
    assert due(seen, ingested, fired, now=161.0, refire_seconds=60)  # not ingested since
    assert not due(seen, Marker("abc", 3, 150.0), fired, now=500.0, refire_seconds=60)
    assert due(Listing("new", 4), Marker("abc", 3, 150.0), fired, now=151.0, refire_seconds=60)
    assert not due(Listing("empty", 0), None, None, now=1.0, refire_seconds=60)  # no news
    assert due(Listing("empty", 0), ingested, None, now=1.0, refire_seconds=60)  # all removed


def test_markers_round_trip_and_a_damaged_one_reads_as_none(tmp_path):
    state = str(tmp_path / "state")
    assert read_marker(state, FIRED) is None
    m = write_marker(state, INGESTED, Listing("f", 2), now=5.0)
    assert read_marker(state, INGESTED) == m == Marker("f", 2, 5.0)
    (tmp_path / "state" / "landing-fired.json").write_text("{not json")
    assert read_marker(state, FIRED) is None


def test_marking_a_listing_ingested_records_its_files_first(tmp_path):
    from lookalike.catalog.landing import list_files, listing_of, mark_ingested, read_files

    land = tmp_path / "landing" / "Hats"
    land.mkdir(parents=True)
    (land / "a.png").write_bytes(b"a")
    files = list_files(str(tmp_path / "landing"))
    assert list(files) == ["Hats/a.png"] and files["Hats/a.png"][0] == 1
    assert listing_of(files) == listing(str(tmp_path / "landing"))
    state = str(tmp_path / "state")
    marker = mark_ingested(state, files)
    assert read_files(state, INGESTED) == files
    assert read_files(state, INGESTED, marker.fingerprint) == files
    assert read_files(state, INGESTED, "another listing") is None
    assert read_marker(state, INGESTED).fingerprint == listing_of(files).fingerprint
