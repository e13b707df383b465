"""Evaluation of labelled structures with a model: batched predictions (:mod:`.predict`), per-element error tables
(:mod:`.errors`) and the ``gfm eval`` pipeline (:mod:`.run`)."""
