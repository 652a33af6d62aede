"""Retention and privacy (issue 16): Ray-free.

``anchoring`` anchors the audit chain's head to an Object Lock bucket and verifies the chain
against every anchor; ``holds`` decides what legal holds keep. The thin Ray wrapper is
``sentinel.actors.retention``; the routes are ``sentinel.api.privacy``.
"""
