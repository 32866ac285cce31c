"""Bridges to other evaluation tools (lm-eval's ``--model mmada``)."""
