"""Logins check passwords in a bounded pool off the event loop, and the login limit holds under
gunicorn's gevent worker while many clients hammer `POST /auth/token` (timings: bench/login.py)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from app.passwords import PasswordHasher
from tests.webserver import WebServer

CLIENTS = 16


def hammer(server: WebServer, logins: list[tuple[str, str]]) -> tuple[list[int], list[int]]:
    """Send `logins` from CLIENTS threads at once while probing /healthz; both lists of statuses."""
    health: list[int] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            health.append(requests.get(server.url + "/healthz", timeout=10).status_code)
            time.sleep(0.02)

    def login(credentials: tuple[str, str]) -> int:
        email, password = credentials
        return requests.post(server.url + "/api/v2/auth/token", json={"email": email, "password": password}, timeout=30).status_code

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            statuses = list(pool.map(login, logins))
    finally:
        done.set()
        prober.join()
    return statuses, health


@pytest.fixture(scope="module")
def unlimited_web(app):
    server = WebServer("login-unlimited", {"RATE_LIMIT_AUTH": "off"})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def limited_web(app):
    server = WebServer("login-limited", {"RATE_LIMIT_AUTH": "5/minute"})
    server.start()
    yield server
    server.stop()


def test_concurrent_logins_under_gevent_each_get_the_right_answer(unlimited_web, tenant):
    logins = [(tenant.admin_email, "admin-password" if number % 2 == 0 else "wrong-password") for number in range(CLIENTS * 2)]
    statuses, health = hammer(unlimited_web, logins)
    assert statuses == [200 if number % 2 == 0 else 401 for number in range(CLIENTS * 2)]
    assert health and set(health) == {200}


def test_the_login_limit_kicks_in_while_16_clients_hammer_the_gevent_worker(limited_web, tenant):
    statuses, health = hammer(limited_web, [(tenant.admin_email, "admin-password")] * (CLIENTS * 3))
    assert set(statuses) <= {200, 429}
    # One address and one email: five logins a minute, then 429.
    assert statuses.count(200) == 5
    assert statuses.count(429) == CLIENTS * 3 - 5
    assert health and set(health) == {200}
    refused = requests.post(limited_web.url + "/api/v2/auth/token", json={"email": tenant.admin_email, "password": "admin-password"}, timeout=10)
    assert refused.status_code == 429 and refused.headers["Retry-After"].isdigit()
    assert refused.headers["Content-Type"] == "application/problem+json"


def test_the_pool_runs_at_most_its_size_at_once():
    hasher = PasswordHasher(size=2)
    running = 0
    most = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    try:
        with ThreadPoolExecutor(8) as callers:
            list(callers.map(lambda _: hasher.run(work), range(16)))
    finally:
        hasher.close()
    assert most == 2


def test_the_pool_hashes_and_checks_passwords():
    hasher = PasswordHasher(size=1)
    try:
        stored = hasher.hash("correct horse")
        assert stored.startswith("scrypt:") and "correct horse" not in stored
        assert hasher.verify(stored, "correct horse") is True
        assert hasher.verify(stored, "wrong horse") is False
        assert hasher.verify(None, "anything") is False
    finally:
        hasher.close()
