"""The bad-input gauntlet's CI part (scripts/gauntlet.py --quick) against the in-process app.

Every hostile file, server path, abused parameter and odd video must be answered correctly or refused
with a clear message, no case may hang or crash the server, and the health checks must pass.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

pytestmark = pytest.mark.slow


def test_quick_gauntlet_gives_only_answers_and_clear_messages(app_url, tmp_path):
    import gauntlet

    cases = gauntlet.build_cases(tmp_path, quick=True)
    assert len(cases) >= 150
    rows = gauntlet.run(app_url, cases, log=lambda line: None)
    bad = [f"{r['outcome']}: {r['case']}: {r['detail']}" for r in rows if r["outcome"] not in ("ok", "clear message")]
    print(gauntlet.table(rows))
    assert not bad, "\n".join(bad)
