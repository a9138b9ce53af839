"""Cyclic-GC tuning for every service (create_service_app, the gateway, the bot runner).

A full (generation 2) collection walks every tracked object; with a busy service's
long-lived state (a thousand bots' adapters and candle windows, pools, caches) one took
136 ms in the middle of a burst of bot orders. Objects that live for the whole run are
moved to the permanent generation once they exist (after start-up, after adopting bots),
so full collections stay short, and the young generation is collected less often.
"""

from __future__ import annotations

import gc

# Young generation collected every 50,000 net allocations (the default 700 made the
# gateway collect several times per request burst); older ones as before, relative.
THRESHOLDS = (50_000, 50, 50)


def tune_collections() -> None:
    """Collect less often; call once at start-up."""
    gc.set_threshold(*THRESHOLDS)


def freeze_long_lived(*, full: bool = False) -> None:
    """Collect the garbage of the young generations (or all, with ``full``), then move
    everything still alive out of the collector's view for good."""
    gc.collect(2 if full else 1)
    gc.freeze()
