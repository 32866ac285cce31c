"""The HTML report of one or more runs: one self-contained file (inline CSS, PNGs as data URIs)."""
