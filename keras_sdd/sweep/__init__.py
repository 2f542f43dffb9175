"""Sweeps: many ordinary studies over a grid of settings (``grid``), run as Ray tasks (``engine``)."""
