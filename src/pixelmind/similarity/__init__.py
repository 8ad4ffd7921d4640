"""Image embeddings and similarity search for any model whose task gives a feature vector.

:mod:`~pixelmind.similarity.extract` embeds files with embed weights (the model itself) or
classify weights (their penultimate features); :mod:`~pixelmind.similarity.index` keeps vectors
in a faiss index with the paths and the weights' fingerprint beside it; :mod:`~pixelmind.similarity.cli`
has the ``embed``, ``index``, ``search`` and ``verify`` verbs.
"""
