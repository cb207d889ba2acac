"""spark-submit entry point: the promotion gate (challenger vs champion), then the full index
and the bundle for a winner.

    spark-submit --master local[2] spark_jobs/promote.py [--challenger challenger] [--margin 0]

Same arguments as ``lookalike promote``; the catalogue embedding runs on this application.
"""

import sys

from lookalike.cli import main

if __name__ == "__main__":
    sys.exit(main(["promote", *sys.argv[1:]]))
