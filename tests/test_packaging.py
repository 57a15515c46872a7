"""The project's set-up files agree with each other, so conda and pip users get the same environment."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _split(requirement: str) -> tuple[str, str]:
    """'scikit-learn >=1.3' -> ('scikit-learn', '>=1.3'); both files use pip's specifier syntax."""
    name, spec = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", requirement).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return dict(_split(r) for r in reqs)


def _environment() -> dict[str, str]:
    deps = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    out = {}
    for dep in deps:
        for req in dep["pip"] if isinstance(dep, dict) else [dep]:
            if req.startswith("-e") or req.split("=")[0] in {"python", "pip"}:
                continue
            name, spec = _split(req)
            out[name] = spec
    return out


def test_environment_yml_and_pyproject_name_the_same_dependencies():
    assert _environment() == _pyproject()


def test_torch_and_torchvision_are_pinned_exactly():
    deps = _pyproject()
    assert deps["torch"] == "==2.14.1" and deps["torchvision"] == "==0.29.1"


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()
    targets = re.findall(r"^([a-z]+):", (ROOT / "Makefile").read_text(), re.M)
    assert {"help", "setup", "reproduce", "test", "docs", "lab"} <= set(targets)
    assert "make docs" in (ROOT / ".ci" / "run").read_text()


def test_readme_is_a_front_page_whose_links_reach_the_docs():
    """The README stays a front page (about 200 lines); every relative link in it names a file that exists, and
    every docs page is in the site's navigation (mkdocs --strict, in CI, checks the links inside docs/)."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert any(t.startswith("docs/") for t in targets)
    missing = [t for t in targets if "://" not in t and not (ROOT / t).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    listed = {page for item in nav for page in item.values() if isinstance(page, str)}
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert pages <= listed, f"docs pages missing from mkdocs.yml's nav: {sorted(pages - listed)}"


def test_the_claims_table_is_the_same_on_the_front_page_and_the_results_page():
    def claims(text: str) -> list[str]:
        lines = text.splitlines()
        start = lines.index(next(line for line in lines if line.startswith("| claim |")))
        end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
        return lines[start:end]

    assert claims((ROOT / "README.md").read_text()) == claims((ROOT / "docs" / "results.md").read_text())


def test_citation_file_cites_this_companion_and_the_works_it_reproduces():
    """GitHub's "Cite this repository" reads CITATION.cff (validated with cffconvert when it was written)."""
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["license"] == "MIT"
    dois = {ref.get("doi") for ref in cff["references"]}
    assert {"10.1007/978-3-031-16760-7_12", "10.1007/978-3-031-72120-5_4", "10.1038/s41597-022-01721-8"} <= dois
    assert any("submodlib" in ref.get("url", "") for ref in cff["references"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_the_gpu_check_stops_at_once_without_cuda():
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "sees no CUDA GPU" in done.stderr


def test_tests_assert_equality_only_through_the_exactness_helpers():
    """tests/exactness.py says which equalities hold bit for bit on every CPU and which only within rounding; an
    array equality written directly would claim bits without saying on which CPUs they hold."""
    written = re.compile(r"np\.(testing\.assert_)?array_equal\(")
    direct = [f"{path.name}:{n}" for path in sorted((ROOT / "tests").glob("*.py")) if path.name != "exactness.py"
              for n, line in enumerate(path.read_text().splitlines(), 1) if written.search(line)]
    assert not direct, f"use exactness.exact, close, picks_clear_of_ties or greedy_within_rounding in {direct}"
