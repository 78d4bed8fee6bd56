"""The house check: README is a front door (at most 200 lines, with the test command CI runs), and every Python
module of the product is small enough to read in one sitting (at most 450 lines)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_is_a_front_door_with_the_test_command():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert "<!-- test-command -->" in text and "<!-- /test-command -->" in text


def test_no_product_module_is_over_450_lines():
    long = {str(p.relative_to(ROOT)): n for folder in ("edge", "ground", "models", "export", "cvae")
            for p in (ROOT / folder).rglob("*.py") if (n := len(p.read_text().splitlines())) > 450}
    assert not long, long
