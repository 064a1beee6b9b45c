"""Datasets of a training run: availability (sources), compatibility from metadata only (meta),
the camera mapping (cameras), the merged-group cache (merge), demo data (demo) and the run's
dataset step (prepare). Import submodules directly; this package imports nothing heavy.
"""
