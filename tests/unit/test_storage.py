"""``lookalike.storage``'s batch readers on local files (the object-store side runs in
``tests/integration/test_object_store.py`` against a real S3 server)."""

import pyarrow as pa
import pyarrow.parquet as pq

from lookalike import storage


def test_read_many_keeps_the_order_and_returns_errors_in_place(tmp_path):
    paths = []
    for i in range(5):
        (tmp_path / f"{i}.bin").write_bytes(bytes([i]) * (i + 1))
        paths.append(str(tmp_path / f"{i}.bin"))
    paths.insert(2, str(tmp_path / "missing.bin"))
    out = list(storage.read_many(paths, limit=3))
    assert out[:2] == [b"\x00", b"\x01\x01"]
    assert isinstance(out[2], FileNotFoundError)
    assert out[3:] == [b"\x02\x02\x02", b"\x03\x03\x03", b"\x04\x04\x04"]


def test_parquet_file_reads_columns_in_file_order_with_its_row_groups(tmp_path):
    path = tmp_path / "t.parquet"
    table = pa.table({"item_id": [f"i{n:03d}" for n in range(600)], "x": list(range(600))})
    pq.write_table(table, path, row_group_size=256)
    fragment = storage.parquet_file(str(path))
    assert [g.num_rows for g in fragment.row_groups] == [256, 256, 88]
    batches = list(storage.parquet_batches(str(path), ["item_id"], batch_rows=100))
    assert all(b.num_rows <= 100 and b.schema.names == ["item_id"] for b in batches)
    ids = [i for b in batches for i in b.column(0).to_pylist()]
    assert ids == table.column("item_id").to_pylist()
