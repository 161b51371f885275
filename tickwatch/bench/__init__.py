"""`tickwatch bench`: one module per section, `common` for what sections share, `run` to run them.

Sections run in private topics, indices and a Redis database of their own; `seed` loads (once) the big
history the read-side sections measure.
"""
