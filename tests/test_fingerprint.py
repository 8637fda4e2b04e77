"""The code fingerprint export sidecars record: it follows the architecture's imports, and only them."""
import shutil

import pytest

from models import REGISTRY, fingerprint


@pytest.fixture
def models_copy(tmp_path, monkeypatch):
    """A copy of models/ the fingerprint reads instead of the real package."""
    copy = tmp_path / "models"
    shutil.copytree(fingerprint.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fingerprint, "PACKAGE_DIR", copy)
    fingerprint.module_sources.cache_clear()
    yield copy
    fingerprint.module_sources.cache_clear()


def test_sources_follow_relative_and_absolute_imports():
    assert set(fingerprint.module_sources("colorize_hint")) == {"colorize_hint.py", "colorize_lab.py", "lab_color.py"}
    assert set(fingerprint.module_sources("vsr")) == {"vsr.py", "flashsr.py", "flowinterp.py", "frame_padding.py"}
    assert fingerprint._imported_siblings("from models.flashsr import X\nfrom . import hints\n") == {"flashsr", "hints"}


def test_an_imported_module_changes_the_fingerprint_an_unrelated_one_does_not(models_copy):
    spec = REGISTRY["colorize_hint_cls"]
    before, mc_before = spec.code_fingerprint(), spec.code_fingerprint(mc=True)
    assert before != mc_before  # the MC wrapper is part of the MC graph
    (models_copy / "flashsr.py").write_text((models_copy / "flashsr.py").read_text() + "\nUNRELATED = 1\n")
    fingerprint.module_sources.cache_clear()
    assert spec.code_fingerprint() == before
    lab = models_copy / "lab_color.py"
    lab.write_text('"""Edited documentation."""\n# and a comment\n' + lab.read_text().split('"""', 2)[2])
    fingerprint.module_sources.cache_clear()
    assert spec.code_fingerprint() == before  # documentation is not code
    lab.write_text(lab.read_text() + "\nCHANGED = 1\n")
    fingerprint.module_sources.cache_clear()
    assert spec.code_fingerprint() != before


def test_constructor_kwargs_are_part_of_the_fingerprint():
    narrow, wide = REGISTRY["flowinterp"], REGISTRY["flowinterp_wide"]
    assert narrow.arch == wide.arch and narrow.code_fingerprint() != wide.code_fingerprint()
