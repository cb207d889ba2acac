"""spark-submit entry point: bring the index up to date with the catalogue.

    spark-submit spark_jobs/reindex.py                 # incremental, from the change feed
    spark-submit spark_jobs/reindex.py --full          # full build for the champion encoder

Incremental: net changes since the served index version's watermark (``--base``: the index of
the bundle the service is told to serve), embedded with the SAME encoder version, applied to
the index, recall-checked, published as a bundle. No changes: no
new version. Arguments after ``--full`` are those of ``lookalike index build``, otherwise
those of ``lookalike index update``.
"""

import sys

from lookalike.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--full"]:
        sys.exit(main(["index", "build", *args[1:]]))
    sys.exit(main(["index", "update", *args]))
