"""Running tasks: shared types (:mod:`.types`), planning (:mod:`.planning`), the dispatcher by output type
(:mod:`.runner`), the text path (:mod:`.text_path`) and the text-to-image path (:mod:`.text_to_image`), item and
leaderboard records (:mod:`.records`), resume progress (:mod:`.progress`), sharding (:mod:`.distributed`),
length-sorted batches (:mod:`.batching`), batch sizes (:mod:`.batch_size`) and wall-time accounting (:mod:`.timing`)."""
