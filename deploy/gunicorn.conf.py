"""gunicorn settings of the web process (REST API, WebSocket feed, web UI).

One gevent worker holds thousands of WebSocket connections alongside API traffic: each
connection is a greenlet, not a thread. psycopg2 is made cooperative so a database query
does not stall the other greenlets.
"""

import os

worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_connections = int(os.environ.get("WEB_WORKER_CONNECTIONS", "4000"))
timeout = 60
graceful_timeout = 20
keepalive = 5
# The access log names the path without its query string: the WebSocket token
# (?token=...) never reaches a log line.
accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'


def post_fork(server, worker):
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
