"""Embedding rows built on executors and on the driver (fake encoder, no Spark, no MLflow)."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
from PIL import Image

from lookalike.registry import encoders
from lookalike.registry.encoders import EncoderRef
from lookalike.similarity import embeddings as emb

ENC = EncoderRef("enc", "3", input_size=8, channels=1, embedding_size=4, local_dir="/fake/enc")


def fake_predict(x: np.ndarray) -> np.ndarray:
    """Mean brightness in dimension 0: deterministic, shape-checking."""
    assert x.shape[1:] == (8, 8, 1) and x.dtype == np.uint8
    out = np.zeros((len(x), 4), np.float32)
    out[:, 0] = 1.0
    out[:, 1] = x.reshape(len(x), -1).mean(axis=1) / 255.0
    return out


def png(value: int, size: int = 28) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_executor_batch_embeds_each_image_once(monkeypatch):
    monkeypatch.setitem(encoders._LOADED, ENC.local_dir, fake_predict)
    batch = pa.RecordBatch.from_pydict(
        {"item_id": ["a", "b"], "content_hash": ["ha", "hb"], "image": [png(0), png(255)]}
    )
    out = emb.embed_batch(batch, ENC)
    assert out.column("item_id").to_pylist() == ["a", "b"]
    vectors = np.asarray(out.column("embedding").to_pylist(), np.float32)
    assert vectors.shape == (2, 4) and vectors[0, 1] == 0.0 and vectors[1, 1] == 1.0
    empty = emb.embed_batch(batch.slice(0, 0), ENC)
    assert empty.num_rows == 0 and empty.schema.field("embedding").type == pa.list_(pa.float32())


def test_driver_rows_carry_upserts_and_deletes():
    vectors = np.arange(8, dtype=np.float32).reshape(2, 4)
    rows = emb.staged_rows(ENC, 7, upserts=(["a", "b"], ["ha", "hb"], vectors), deletes=["z"])
    assert rows.schema == emb.STAGED_SCHEMA
    assert rows.column("_op").to_pylist() == ["upsert", "upsert", "delete"]
    assert rows.column("encoder_version").to_pylist() == ["3", "3", "3"]
    assert rows.column("embedding").to_pylist()[1] == [4.0, 5.0, 6.0, 7.0]
    assert rows.column("catalog_version").to_pylist() == [7, 7, None]


def test_embed_images_letterboxes_any_size_the_same_way():
    out = encoders.embed_images(
        fake_predict, [png(255, 28), png(255, 100)], input_size=8, channels=1, batch_size=1
    )
    assert out.shape == (2, 4) and np.allclose(out[0], out[1])


def test_a_merge_with_an_insert_and_a_delete_of_a_row_already_gone_commits(tmp_path):
    """What an incremental re-index stages after the fresh ingest deleted the row already:
    delta-rs 1.6 refused such a MERGE ("rows failed validation check")."""
    from types import SimpleNamespace

    import numpy as np

    from lookalike.similarity.embeddings import merge_embeddings, read_embeddings, staged_rows

    enc = SimpleNamespace(name="enc", version="1", embedding_size=4)
    uri = str(tmp_path / "embeddings")
    v = np.eye(4, dtype=np.float32)[:2]
    merge_embeddings(
        uri, staged_rows(enc, 1, upserts=(["a", "b"], ["ha", "hb"], v)), commit_metadata={}
    )
    merge_embeddings(uri, staged_rows(enc, 1, deletes=["b"]), commit_metadata={})
    rows = staged_rows(enc, 2, upserts=(["c"], ["hc"], v[:1]), deletes=["b", "never"])
    merge_embeddings(uri, rows, commit_metadata={})
    assert read_embeddings(uri, "enc", "1")[0] == ["a", "c"]


def test_a_few_changes_are_embedded_on_the_driver_once(tmp_path, monkeypatch):
    """Added, replaced and removed photos: one commit of just those rows, images read only
    from the files holding them; a rerun commits nothing; too many changes are left to the
    executors with nothing written."""
    from deltalake import write_deltalake

    from lookalike.catalog.table import delta_table
    from lookalike.config import Settings

    monkeypatch.setitem(encoders._LOADED, ENC.local_dir, fake_predict)
    settings = Settings(home=tmp_path)
    cat, uri = str(settings.catalog_uri), str(settings.embeddings_uri)

    def catalogue(rows: dict[str, int], mode: str) -> None:
        ids = sorted(rows)
        table = {  # as delta-rs reads its own files back: string and binary views
            "item_id": pa.array(ids, pa.string_view()),
            "content_hash": pa.array([f"h{rows[i]}" for i in ids], pa.string_view()),
            "image": pa.array([png(rows[i]) for i in ids], pa.binary_view()),
        }
        write_deltalake(cat, pa.table(table), mode=mode)

    catalogue({"a": 0, "b": 100, "c": 200}, "overwrite")
    first = emb.embed_changed(settings, ENC, most=10)
    assert (first.embedded, first.deleted, first.unchanged) == (3, 0, 0)
    catalogue({"a": 0, "b": 255, "d": 50}, "overwrite")  # b replaced, c removed, d added
    again = emb.embed_changed(settings, ENC, most=10)
    assert (again.embedded, again.deleted, again.unchanged) == (2, 1, 2)
    ids, vectors, hashes = emb.read_embeddings(uri, "enc", "3")
    assert ids == ["a", "b", "d"] and hashes == ["h0", "h255", "h50"]
    assert vectors[1, 1] == 1.0  # b's new photo, all white
    version = delta_table(uri).version()
    rerun = emb.embed_changed(settings, ENC, most=10)
    assert rerun.embedded == rerun.deleted == 0 and delta_table(uri).version() == version
    catalogue({"e": 1, "f": 2}, "append")
    assert emb.embed_changed(settings, ENC, most=1) is None
    assert delta_table(uri).version() == version
