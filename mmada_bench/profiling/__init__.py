"""Latency / throughput / MFU profiles: measurements (:mod:`.measure`), the profile suite (:mod:`.suite`),
profiles.parquet (:mod:`.store`) and plots (:mod:`.plots`)."""
