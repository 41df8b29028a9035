"""The local command line (``python -m handler``) and its local HTTP server."""
