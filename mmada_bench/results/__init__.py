"""Stored results: durable item stores and atomic writes (:mod:`.store`), the Parquet leaderboard and item
tables (:mod:`.leaderboard`), published baselines (:mod:`.baselines`), the environment recorded with every
result (:mod:`.environment`)."""
