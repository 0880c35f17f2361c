"""A real SMTP server for tests: aiosmtpd's Controller on a free port of 127.0.0.1."""

from __future__ import annotations

import pytest

try:
    from aiosmtpd.controller import Controller
except ImportError:  # start_controller fails with what to install
    Controller = None


def start_controller(handler, **options):
    """An aiosmtpd server with `handler`, started on a free port; stop() it when done."""
    if Controller is None:
        pytest.fail("aiosmtpd is missing: install the test requirements (aiosmtpd==1.4.6)")

    class FreePortController(Controller):
        # Controller connects to `self.port` once to check the server is up; with port 0 it
        # must first learn the port the operating system chose.
        def _trigger_server(self):
            self.port = self.server.sockets[0].getsockname()[1]
            super()._trigger_server()

    controller = FreePortController(handler, hostname="127.0.0.1", port=0, **options)
    controller.start()
    return controller
