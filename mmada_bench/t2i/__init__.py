"""Text-to-image tasks: prompt sets, batched MaskGIT generation to PNG files, CLIP score and ImageReward.

Modules: :mod:`.prompt_sets` (where prompts come from), :mod:`.generation` (images, PNG metadata, contact
sheet), :mod:`.scoring` (the ``clip_score`` / ``imagereward`` set metrics), :mod:`.task` (the runner's
text-to-image path: plan, resume, score, results).
"""
