"""Benchmarks of the engine, ours side by side with diffusers: `python -m bench --help`.

Random weights of the real architectures unless a model folder is given (the time is the
same). This package sits outside the product: diffusers is a benchmark dependency only
(`bench/requirements.txt`), and nothing in cascade_core or ui imports it.
"""
