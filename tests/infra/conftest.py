"""Fixtures every infra test shares: one synthesis of the CDK app per test session, and its deployments."""

from __future__ import annotations

import pytest
from cfn_matrix import Deployment
from infra_synthesis import Synthesized, synthesize
from infra_synthesis import deployments as all_deployments


@pytest.fixture(scope="session")
def synthesized() -> Synthesized:
    return synthesize()


@pytest.fixture(scope="session")
def root(synthesized: Synthesized) -> dict:
    return synthesized.root


@pytest.fixture(scope="session")
def deployments() -> list[Deployment]:
    return all_deployments()
