"""The benchmark of SPEC P: ``python -m bench --scale 1`` (``make bench``)."""
