"""The HTTP API's client, with and without RFC 9421 request signatures (I/O)."""
