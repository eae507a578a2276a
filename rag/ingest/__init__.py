"""Ingest: turn files into indexed chunks. Owns the loaders (txt, md, html, pdf, docx), Dutch
clean-up with offsets back into the raw text (``clean``), sentence splitting, sentence-aware
chunking, and the pipeline that embeds chunks and hands them to a store writer in one commit."""
