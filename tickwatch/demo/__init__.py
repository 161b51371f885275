"""`tickwatch demo`: the live demo (`run`) and its tour of every front-end (`tour`, drawn in the terminal
by `blocks_text`).
"""
