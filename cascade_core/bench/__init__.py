"""Benchmarks of the engine, ours side by side with diffusers: `python -m cascade_core.bench --help`.

Random weights of the real architectures unless a model folder is given (the time is the
same). diffusers is a benchmark dependency only (`bench/requirements.txt`); nothing else in
cascade_core imports this package.
"""
