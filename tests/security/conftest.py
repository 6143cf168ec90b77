"""Fixtures shared by the security tests."""

from __future__ import annotations

import pytest
import urllib3.util.connection


@pytest.fixture
def connections(monkeypatch) -> list[tuple[str, int]]:
    """Records every outgoing connection urllib3 attempts and refuses it, so none can leave the machine."""
    seen: list[tuple[str, int]] = []

    def refuse(address, *args, **kwargs):
        seen.append(address)
        raise ConnectionRefusedError(f"test connection recorder refused {address}")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", refuse)
    return seen
