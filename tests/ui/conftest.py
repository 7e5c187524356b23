"""The demo model, built once for all of tests/ui (tests must not change it)."""
import pytest

import cascade_core as cc


@pytest.fixture(scope="session")
def demo_model():
    return cc.load_demo()
