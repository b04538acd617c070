"""Measurements behind ``fqm bench``: decoding, the face stage, and the quality model.

Each returns typed results; :mod:`monitor.cli.bench` prints them. Tests check that they
run and report real work, never how fast.
"""
