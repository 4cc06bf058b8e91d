"""HTTP controllers: thin, each parses a request, calls one service, presents the result."""
