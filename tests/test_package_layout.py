"""How the server's package is laid out: small modules, and a README that says
where everything is."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "upgrade_server"
MAX_LINES = 500


def test_no_module_of_the_server_is_over_500_lines():
    too_long = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert too_long == {}, "split these along their sub-concepts (README, Development)"
