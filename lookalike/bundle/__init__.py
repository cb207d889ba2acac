"""The deployable unit: encoder + index version in one registered pyfunc, and its aliases."""
