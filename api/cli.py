"""The ``onsale`` command line: serve, seed, writer, sweeper, audit.

argparse keeps start-up cheap and the dependency list short; heavy imports happen inside
each command.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from api.commands.ops import cmd_audit, cmd_queue_verify, cmd_seed
from api.commands.serve import cmd_serve
from api.commands.workers import WRITER_TUNING, cmd_sweeper, cmd_webhooks, cmd_writer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onsale", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="serve the API and WebSocket (uvicorn)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="uvicorn worker processes (default: WEB_CONCURRENCY, else one per usable core)",
    )
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--seed", action="store_true", help="create the demo data first (once)")
    p.add_argument("--access-log", action="store_true")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("seed", help="create the demo users and events (idempotent)")
    p.set_defaults(func=cmd_seed)

    p = sub.add_parser("writer", help="persist the order streams into the store")
    p.add_argument("--name", default=None, help="consumer name (default host-pid)")
    p.add_argument(
        "--replay-dead",
        action="store_true",
        help="move the dead letters back into their order logs (the writers store them), "
        "print how many, and exit",
    )
    for name, help_text in WRITER_TUNING.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=None, help=help_text)
    p.set_defaults(func=cmd_writer)

    p = sub.add_parser("webhooks", help="deliver the webhooks (own consumer group)")
    p.add_argument("--name", default=None, help="consumer name (default host-pid)")
    p.set_defaults(func=cmd_webhooks)

    p = sub.add_parser("audit", help="check available + held + sold == total everywhere")
    p.add_argument("--event", action="append", help="only this event (repeatable)")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("sweeper", help="release expired holds (listener + sweeper)")
    p.add_argument("--no-listener", action="store_true", help="sweeper only")
    p.set_defaults(func=cmd_sweeper)

    p = sub.add_parser("queue", help="admission queues")
    queue_sub = p.add_subparsers(dest="queue_command", required=True)
    v = queue_sub.add_parser(
        "verify", help="recompute a queue's opening order from its revealed seed and compare"
    )
    v.add_argument("event", help="event id")
    v.set_defaults(func=cmd_queue_verify)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
