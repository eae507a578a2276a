"""Command-line front end (`rag`)."""
