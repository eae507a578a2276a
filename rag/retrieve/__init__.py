"""Retrieve: find the passages for a question. Owns BM25 / dense / hybrid (RRF) search over the
store protocols, diversity, neighbour expansion, the reranker slot, and follow-up rewriting."""
