"""The README's and docs' generated tables agree with the committed CSVs (issue 34): a table
edited by hand, or a CSV re-run without `make tables`, fails here."""
import pytest

from reproduce import tables


def test_every_marked_table_matches_its_csv():
    drift = []
    for name in tables.FILES:
        _, changed = tables.render((tables.ROOT / name).read_text())
        drift += [f"{name}: {t}" for t in changed]
    assert not drift, f"tables drifted from their CSVs (run `make tables`): {drift}"


def test_a_hand_edit_is_caught(tmp_path):
    text = (tables.ROOT / "README.md").read_text()
    assert "<!-- table:bias " in text
    edited = text.replace("| `cd-1` (biased) |", "| `cd-1` (biased, edited) |", 1)
    assert edited != text
    assert "bias" in tables.render(edited)[1]


def test_unknown_table_is_an_error():
    with pytest.raises(SystemExit, match="unknown table"):
        tables.render("<!-- table:nope -->\nx\n<!-- /table:nope -->")
