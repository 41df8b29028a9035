"""Fixtures: a real local COS server on 127.0.0.1 and the handler wired to it."""
from __future__ import annotations

import pytest

import devkit
from smartcover.scf.app import App
from tests.helpers import app_for


@pytest.fixture()
def cos():
    """A fresh LocalCOS per test (state and request log start empty)."""
    srv = devkit.server()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture()
def make_app(cos):
    """``make_app(**env_overrides) -> App`` against the test's LocalCOS."""

    def build(**overrides: str) -> App:
        return app_for(cos, **overrides)

    return build


@pytest.fixture()
def seeded(cos):
    """LocalCOS seeded with every official sample's input, covers and CI job."""
    for name in devkit.SAMPLES:
        devkit.seed(cos, devkit.sample(name))
    return cos


@pytest.fixture(autouse=True)
def _fresh_bucket_facts():
    """Each test starts as a cold process would: nothing known of any bucket's versioning
    (``cos.honours_forbid_overwrite`` remembers it per process). Imported lazily: the cold-path
    tests check what a fresh interpreter loads, not this one."""
    import sys

    cos = sys.modules.get("smartcover.cloud.cos")
    if cos is not None:
        cos.forget_bucket_facts()
    yield
