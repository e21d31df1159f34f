"""Every test here decodes image folders into its own image cache (never ~/.cache)."""

import pytest


@pytest.fixture(autouse=True)
def _private_image_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ARCHSPEC_CACHE", str(tmp_path_factory.mktemp("image-cache")))
