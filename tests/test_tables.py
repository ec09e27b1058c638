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


def test_slide25_rule_says_yes_no_and_undecided():
    import pandas as pd

    from reproduce import verdicts

    def numbers(others):
        rows = [("mnist", "ucd-mh-lmi", -110.0, -100.0)] + [("mnist", m, lo, hi) for m, (lo, hi) in others.items()]
        iv = pd.DataFrame([dict(dataset=d, method=m, test_ll_low=lo, test_ll_high=hi) for d, m, lo, hi in rows])
        return {"iv": iv.set_index(["dataset", "method"])}
    below = {"cd": (-130, -120), "pcd": (-150, -140), "ucd-gibbs": (-200, -190)}
    assert verdicts.slide25_verdict(numbers(below), "mnist")[0] == "yes"
    assert verdicts.slide25_verdict(numbers({**below, "pcd": (-90, -80)}), "mnist")[0] == "no"
    assert verdicts.slide25_verdict(numbers({**below, "cd": (-105, -95)}), "mnist")[0] == "undecided"


def test_every_table_is_placed_somewhere():
    text = "".join((tables.ROOT / f).read_text() for f in tables.FILES)
    assert [n for n in tables.TABLES if f"<!-- table:{n} " not in text] == []
