"""The notifier: who gets which alert, on which channel, once, with proof (issue 13).

Ray-free: ``subscriptions`` (matching, quiet hours, cooldown, escalation), ``policy`` (backoff,
token buckets, idempotency keys, the delivery state machine), ``templates`` (sandboxed Jinja2),
``signing`` (webhook signatures, signed expiring links), ``ssrf`` (the outbound-URL guard),
``channels`` (webhook, email, MQTT, SMS) and ``relay`` (the outbox relay's loop). The thin Ray
actor is ``sentinel.actors.notifier``.
"""
