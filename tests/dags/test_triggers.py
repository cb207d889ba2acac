"""The landing trigger as the triggerer runs it: serialised, then polled on its event loop."""

from __future__ import annotations

import asyncio

from lookalike_airflow.triggers import LandingChangedTrigger

from lookalike.catalog.landing import FIRED, INGESTED, listing, read_marker, write_marker


def first_event(trigger: LandingChangedTrigger, seconds: float) -> dict | None:
    async def go() -> dict | None:
        agen = trigger.run()
        try:
            event = await asyncio.wait_for(agen.__anext__(), seconds)
        except TimeoutError:
            return None
        finally:
            await agen.aclose()
        return event.payload

    return asyncio.run(go())


def test_it_serialises_to_what_rebuilds_it(tmp_path):
    t = LandingChangedTrigger(str(tmp_path / "in"), str(tmp_path / "state"), 0.5, 30.0)
    path, kwargs = t.serialize()
    assert path == "lookalike_airflow.triggers.LandingChangedTrigger"
    assert LandingChangedTrigger(**kwargs).serialize() == (path, kwargs)


def test_a_landed_photo_fires_once_and_an_ingested_listing_never(tmp_path):
    land, state = tmp_path / "landing", str(tmp_path / "state")
    (land / "Bag").mkdir(parents=True)
    trigger = LandingChangedTrigger(str(land), state, poll_seconds=0.05)
    assert first_event(trigger, 0.5) is None  # an empty store nobody ingested: no news
    (land / "Bag" / "p1.png").write_bytes(b"photo")
    payload = first_event(trigger, 5)
    assert payload is not None and payload["files"] == 1
    assert read_marker(state, FIRED).fingerprint == payload["fingerprint"]
    assert first_event(trigger, 0.5) is None  # announced: not twice
    write_marker(state, INGESTED, listing(str(land)))
    assert first_event(trigger, 0.5) is None
    (land / "Bag" / "p1.png").unlink()  # a removal is news too
    assert first_event(trigger, 5)["files"] == 0
