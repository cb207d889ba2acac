"""New product photos for the refresh path: moved to ``bench.photos`` (the pipeline benchmark
lands them too); re-exported here for the tests."""

from bench.photos import land_fashion_mnist_photos

__all__ = ["land_fashion_mnist_photos"]
