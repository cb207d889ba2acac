"""spark-submit entry point: ingest a catalogue source in one Delta commit.

    spark-submit --master local[2] spark_jobs/ingest_catalog.py fashion-mnist [--limit N]
    spark-submit spark_jobs/ingest_catalog.py folder PATH [--metadata CSV] [--delete-missing]
        [--source NAME] [--id-prefix PREFIX] [--take-over [FILE]]

Takes exactly the arguments of ``lookalike ingest``; the work is in ``lookalike.catalog``.
"""

import sys

from lookalike.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))
