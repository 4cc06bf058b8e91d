"""locust scenarios of the on-sale: rush buyers, WebSocket watchers, browsers, organizers.

Each module holds one user class; ``loadtest/locustfile.py`` puts them together. Every task
carries a tag (``rush``, ``watchers``, ``browse``, ``organizer``) so ``--tags`` picks any mix.
"""
