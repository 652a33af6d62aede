"""Live updates: alert, incident and camera-state changes pushed to dashboards.

A per-process :class:`~sentinel.live.hub.LiveHub` tails the changes from where they are
written (the alerts' notifier outbox, recent incidents, the cameras' states), publishes them
on a :class:`~sentinel.live.bus.LiveBus` (a Redis Stream when ``redis_url`` is set, shared by
every ingress replica; a bounded in-process ring otherwise) and hands them to WebSocket
subscribers from their cursor. Which messages a subscriber may see is decided per message by
:func:`~sentinel.live.messages.visible`.
"""
