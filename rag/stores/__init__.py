"""Stores: the embedder and everything that persists an index. ``base`` defines the protocols the
rest of the code uses (vector index, keyword index, chunk store, writer); ``factory`` picks a
backend by the config field ``vector_store``; ``local`` is the default file snapshot store with
FAISS (``faiss_index``) and BM25 (``bm25``)."""
