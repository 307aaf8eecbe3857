"""The HTTP API and the approval web page."""
