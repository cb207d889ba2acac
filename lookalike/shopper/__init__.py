"""Shopper recommendations: interaction events, matrix factorisation, its bundle."""
