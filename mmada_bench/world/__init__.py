"""The shapes world (spec/shapes_world.md): scenes, the world oracle, task files, training corpora, tokenizers."""
