"""Task cards: the YAML schema (:mod:`.schema`), where cards are found (:mod:`.discovery`) and how an item
becomes a prompt (:mod:`.prompts`)."""
