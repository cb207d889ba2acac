"""The product catalogue: sources, the Delta table and its change data feed."""
