"""Datasets: validation (validate.py), profiling (profile.py), safe zip uploads (upload.py) and the
registry of datasets a job may name as ``dataset:<id>`` (registry.py)."""
