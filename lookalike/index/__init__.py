"""Nearest-neighbour index over catalogue embeddings (ScaNN), versioned on disk."""
