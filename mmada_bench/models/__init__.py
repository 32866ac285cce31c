"""Model families behind one small interface (:mod:`mmada_bench.models.base`).

``resolve_model(spec)`` (in :mod:`mmada_bench.models.loader`) turns ``--model`` into an
:class:`~mmada_bench.models.base.EvalModel`.
"""
