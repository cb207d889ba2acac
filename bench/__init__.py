"""The benchmarks, run from the repository root as ``python -m bench.<name>`` (the ``make
bench-*`` targets); each writes ``bench/results/<name>.json``. docs/benchmarks.md has the
results and what each one measures.

Benchmarks: ``ingest``, ``quality``, ``conv_features``, ``unseen_layers``, ``data_parallel``,
``index``, ``serving``, ``pipeline``, ``shopper`` (after ``get_movielens``), ``byo``.

Shared by them (and, for ``photos`` and ``s3``, by the tests through ``tests/support``):
``catalogue`` (the catalogue to measure on), ``million`` (a million of the product's own
vectors, for ``index --million``), ``load`` (the HTTP load generator),
``process`` (the service as its own process), ``synthetic`` (clustered vectors and a
synthetic bundle of them), ``photos`` (Fashion-MNIST photos landed as new products),
``s3`` (an S3-compatible server as its own process), ``get_movielens`` (MovieLens-100k).
"""
