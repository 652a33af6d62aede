"""The dashboard's history: hourly counts of events and alerts over a bounded window, and the
cameras' and agent's figures sampled over the last hour. Pure aggregation; the SQL lives in
``sentinel.store.dashboard_repo``, the routes in ``sentinel.api.dashboard``."""
