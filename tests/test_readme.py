"""The README's API example runs as written."""
import re

from conftest import ROOT


def test_readme_example_runs():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "no python example in the README"
    exec(compile(blocks[0], "README.md", "exec"), {})
