"""The README's API examples run as written."""
import re

from conftest import ROOT


def test_readme_example_runs():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 2, "the README lost an API example (DBM and EBM)"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
