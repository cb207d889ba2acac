"""spark-submit entry point: Hyperopt search with SparkTrials (arguments of ``lookalike tune``).

spark-submit --master local[2] spark_jobs/tune.py --trials 8 --parallelism 2
"""

import sys

from lookalike.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
