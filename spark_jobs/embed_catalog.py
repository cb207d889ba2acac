"""spark-submit entry point: embed the catalogue with one encoder version on executors.

    spark-submit --master local[2] spark_jobs/embed_catalog.py [--encoder champion]

Writes the ``embeddings`` Delta table (one commit; items whose image did not change since
this encoder version embedded them are skipped). Same arguments as ``lookalike embed``.
"""

import sys

from lookalike.cli import main

if __name__ == "__main__":
    sys.exit(main(["embed", *sys.argv[1:]]))
