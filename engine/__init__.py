"""The onsale reservation engine: Redis owns live inventory, Lua scripts move it.

Nothing in this package knows about HTTP, the store or the settings object: callers
hand it a Redis client and explicit parameters.
"""
