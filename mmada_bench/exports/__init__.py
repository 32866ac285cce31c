"""Exports of finished runs: lm-eval's results/samples files and headline tables (CSV, Markdown)."""
