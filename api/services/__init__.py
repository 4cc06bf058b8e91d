"""The domain layer between the controllers and the engine and store: one service per
domain (events, orders, admin, auth, recovery). Services own the rules and raise the
typed errors of :mod:`api.services.errors`; they never choose an HTTP status."""
