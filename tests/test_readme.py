"""The README's and the docs' code examples run as written."""
import re

import pytest

from conftest import ROOT

PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), flags=re.S)


def test_readme_and_docs_keep_their_examples():
    assert python_blocks("README.md"), "the README lost its API example"
    assert sum(len(python_blocks(p)) for p in PAGES) >= 2, "the DBM and EBM API examples are gone"


@pytest.mark.parametrize("page", PAGES)
def test_examples_run(page):
    for block in python_blocks(page):
        exec(compile(block, page, "exec"), {})


def test_readme_links_resolve():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#]+\.md)\)", (ROOT / page).read_text()):
            assert (ROOT / page).parent.joinpath(target).resolve().is_file(), f"{page} links to missing {target}"
