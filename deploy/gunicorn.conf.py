"""gunicorn settings of the web process (REST API, WebSocket feed, web UI).

One gevent worker holds thousands of WebSocket connections alongside API traffic: each
connection is a greenlet, not a thread. psycopg2 is made cooperative so a database query
does not stall the other greenlets.
"""

import os
import resource

worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_connections = int(os.environ.get("WEB_WORKER_CONNECTIONS", "4000"))
timeout = 60
graceful_timeout = 20
keepalive = 5
# gunicorn 27 opens a control socket in the user's home for every instance; Pulse has no use
# for it, and two instances of one user would contend for it.
control_socket_disable = True
# The access log names the path without its query string: the WebSocket token
# (?token=...) never reaches a log line.
accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'


def _raise_open_file_limit(wanted: int) -> None:
    """Every WebSocket is an open file: let the worker hold worker_connections of them and more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


# Connections, plus the database pool, Redis, log files and headroom.
_raise_open_file_limit(worker_connections + 1024)


def post_fork(server, worker):
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()


def post_worker_init(worker):
    """Warm the worker's services before it takes requests; on a graceful stop (SIGTERM),
    close live-feed connections with 1001 so clients reconnect at once, instead of holding
    the worker until graceful_timeout."""
    import gevent

    services = getattr(worker.wsgi, "extensions", {}).get("pulse")
    if services is not None:
        services.warm()

    def close_feed_when_stopping():
        while worker.alive:
            gevent.sleep(0.5)
        feed = getattr(worker.wsgi, "extensions", {}).get("live")
        if feed is not None:
            feed.shutdown()

    gevent.spawn(close_feed_when_stopping)
