"""Stores: the embedder and everything that persists an index. ``base`` defines the protocols the
rest of the code uses (vector index, keyword index, chunk store, writer); ``factory`` picks a
backend by the config field ``vector_store``; ``lock`` gives any backend one writer at a time.
``local`` is the default store: SQLite (documents, chunks, BM25 from ``bm25``) plus append-only
vector ``segments`` with FAISS structures chosen by size (``faiss_index``)."""
