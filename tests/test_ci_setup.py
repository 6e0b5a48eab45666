"""In CI (``CI=true``) a missing ../shared/data or integration package fails the test instead
of skipping it: a silent skip would hide a broken setup."""

from __future__ import annotations

import pytest
from conftest import shared_dataset


def test_missing_shared_data_skips_locally_and_fails_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        shared_dataset("no-such-collection")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        shared_dataset("no-such-collection")
