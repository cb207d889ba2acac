"""spark-submit entry point: train, evaluate (MF, popularity, ALS) and register a shopper model.

    spark-submit --master local[2] spark_jobs/shopper_train.py --horovod 2 --set epochs=5

Takes exactly the arguments of ``lookalike shopper train``.
"""

import sys

from lookalike.cli import main

if __name__ == "__main__":
    sys.exit(main(["shopper", "train", *sys.argv[1:]]))
