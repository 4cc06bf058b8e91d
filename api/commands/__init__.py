"""The bodies of the ``onsale`` commands; :mod:`api.cli` parses the command line and
dispatches here.

* :mod:`~api.commands.common` — settings, logging, start-up checks, the embedded Redis.
* :mod:`~api.commands.serve` — ``serve``.
* :mod:`~api.commands.workers` — ``sweeper``, ``writer``, ``webhooks``.
* :mod:`~api.commands.ops` — ``audit``, ``queue verify``, ``seed``.
"""
