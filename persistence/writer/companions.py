"""Consumer groups created beside the writer's own on each order log.

The writer trims a log behind the slowest group on it; a group created only after
entries were trimmed would miss them. So when webhooks are in use (``keys.WEBHOOKS_ON``),
the webhook dispatcher's group (``keys.WEBHOOK_GROUP``) is created, at id 0, in the same
step as the writer's, before the writer ever trims that log.
"""

from __future__ import annotations

from redis.asyncio import Redis

from engine import keys
from persistence.writer.groups import ensure_group


async def ensure_companion_groups(redis: Redis, stream: str) -> None:
    if await redis.exists(keys.WEBHOOKS_ON):
        await ensure_group(redis, stream, keys.WEBHOOK_GROUP)


async def enable_webhooks(redis: Redis, streams: list[str]) -> None:
    """Mark webhooks in use and create their group on ``streams`` (the logs that exist
    now; the writer does it for later ones)."""
    await redis.set(keys.WEBHOOKS_ON, "1")
    for stream in streams:
        await ensure_group(redis, stream, keys.WEBHOOK_GROUP)
