"""Delivering notification jobs: one attempt at a time, recorded, fenced, ordered and fed fairly.

* `policy`: the retry policy (attempts, delays, leases), one for every channel type.
* `records`: the typed outcome of an attempt (`AttemptRecord`, `AttemptFailed`).
* `jobs`: the jobs table as the delivery queue (claims, fenced outcomes, feeding the broker).
* `admission`: per-channel bulkheads and circuit breakers, shared in Redis.
* `outbox`: outcomes waiting out a database outage.
* `service`: the workflow the Celery task and its results hook call (`Deliveries`).
* `sweep`: what the beat does (expired leases and jobs, lost messages, due jobs, probes).

Plain Python over the database and Redis: testable without Celery.
"""
