"""spark-submit entry point: train, evaluate and register an encoder.

    spark-submit --master local[2] spark_jobs/train.py --horovod 2 --set epochs=3

Takes exactly the arguments of ``lookalike train``; with ``--horovod N`` the ranks run as
tasks of this Spark application.
"""

import sys

from lookalike.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
