"""The documentation: the site builds without a warning, the README stays short and its
links land on pages of the site, and what the code cites in docs/ exists."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest
import yaml

pytestmark = pytest.mark.fast  # the inner-loop tier: make test-fast

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README_LIMIT_BYTES = 10 * 1024
CITING_TREES = ("jaxtickets", "tests", "configs", "bench", "launch")


def _nav_pages(nav) -> set[str]:
    """Every page path listed in mkdocs.yml's nav."""
    pages = set()
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            pages |= _nav_pages(value)
        else:
            pages.add(value)
    return pages


def _mkdocs_config() -> dict:
    # mkdocs.yml holds no custom YAML tags, so the safe loader reads it.
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text())


def _cited_sources() -> list[pathlib.Path]:
    return [path for tree in CITING_TREES for path in (ROOT / tree).rglob("*")
            if path.suffix in (".py", ".sh", ".md") and path.is_file()]


def test_readme_is_at_most_10_kb():
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_LIMIT_BYTES, f"README.md is {size} bytes, over {README_LIMIT_BYTES}"


def test_readme_links_resolve_to_pages_of_the_site():
    """A relative link of the README must name an existing file, and a link into docs/
    must be a page of the site's navigation, so it works on the repository page and has
    its rendered twin on the site."""
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", (ROOT / "README.md").read_text())
    relative = [link for link in links if "://" not in link]
    assert relative, "the README links no documentation page"
    missing = [link for link in relative if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"
    pages = _nav_pages(_mkdocs_config()["nav"])
    outside = [link for link in relative if link.startswith("docs/")
               and link.removeprefix("docs/") not in pages]
    assert not outside, f"README links to docs files that are not pages of the site: {outside}"


def test_configuration_page_is_the_generated_one():
    """docs/configuration.md is committed (so it reads on the repository page too) and
    must be exactly what the code generates: a key added, removed or given another
    default fails here until the page is regenerated."""
    from jaxtickets import config_reference

    committed = (DOCS / "configuration.md").read_text()
    assert committed == config_reference.markdown(), (
        "docs/configuration.md is stale: python -m jaxtickets.config_reference "
        "docs/configuration.md")


def test_code_cites_no_document_outside_the_repository():
    stale = re.compile(r"DESIGN(\.md)? invariant|digest item|DIGEST (section )?\d|shared/papers")
    hits = [f"{path.relative_to(ROOT)}:{number}" for path in _cited_sources()
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
            if stale.search(line) and path.name != "test_docs.py"]
    assert not hits, f"citations of documents outside the repository: {hits}"


def _anchors(page: pathlib.Path) -> set[str]:
    text = page.read_text()
    return set(re.findall(r"\{#([\w-]+)\}", text)) | set(re.findall(r'<a id="([\w-]+)"', text))


def test_the_docs_anchors_the_code_cites_exist():
    """`docs/choices.md#<anchor>` and `docs/design.md, invariant N` in code and tests name an
    entry that is on that page."""
    cited = []
    for path in _cited_sources():
        text = path.read_text(errors="replace")
        cited += [(path, page, anchor) for page, anchor
                  in re.findall(r"docs/([\w/]+\.md)#([\w-]+)", text)]
        for numbers in re.findall(r"docs/design\.md, invariants? ([\d, and]+)", text):
            cited += [(path, "design.md", f"invariant-{n}") for n in re.findall(r"\d+", numbers)]
    assert len(cited) >= 20, f"only {len(cited)} citations found: the pattern is stale"
    missing = [f"{path.relative_to(ROOT)} cites {page}#{anchor}" for path, page, anchor in cited
               if anchor not in _anchors(DOCS / page)]
    assert not missing, "\n".join(missing)


def test_site_builds_strict_with_every_config_key(tmp_path):
    """`mkdocs build --strict` turns every warning (a broken link or anchor, a page left
    out of the navigation, a docstring mkdocstrings cannot read) into a failure; the
    generated configuration page must carry every key of base_config()."""
    pytest.importorskip("mkdocs")
    from jaxtickets import config_schema

    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                             "--site-dir", str(site)], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    page = (site / "configuration" / "index.html").read_text()
    flat = config_schema.base_config().to_dict()

    def keys(tree, prefix=""):
        for key, value in tree.items():
            if isinstance(value, dict) and value and prefix + key != "generation":
                yield from keys(value, f"{prefix}{key}.")
            else:
                yield prefix + key

    absent = [key for key in keys(flat) if key not in page]
    assert not absent, f"keys missing from the generated configuration page: {absent}"
