"""What both products train with: device pinning, Horovod helpers, the Spark hyperparameter
search and progress lines. Nothing here knows an encoder or a shopper."""
