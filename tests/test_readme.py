"""Every ```python block of README.md runs as printed, offline (no key in the environment), through
``tools/readme_snippets.py`` — the script a developer runs by hand."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_script() -> ModuleType:
    # tools/ is a folder of maintenance scripts, not a package: load the file itself.
    spec = importlib.util.spec_from_file_location("readme_snippets", ROOT / "tools" / "readme_snippets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


script = _load_script()
SNIPPETS = script.snippets(ROOT / "README.md")


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Any]:
    """Every snippet's outcome; they all run at once, each in its own subprocess."""
    return {o.snippet.name: o for o in script.run(SNIPPETS)}


def test_the_readme_has_snippets_and_few_are_not_run() -> None:
    assert len(SNIPPETS) >= 3
    assert sum(s.not_run is not None for s in SNIPPETS) <= 1


@pytest.mark.parametrize("name", [s.name for s in SNIPPETS])
def test_readme_snippet_runs_offline(name: str, outcomes: dict[str, Any]) -> None:
    outcome = outcomes[name]
    assert outcome.ok, f"{name}: {outcome.status}\n{outcome.stdout}\n{outcome.stderr}"


def test_the_extractor_honours_fences_and_the_not_run_marker(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# T\n"
        "```bash\necho no\n```\n"
        "```python\nprint('one')\n```\n"
        "<!-- not run: needs a key -->\n\n"
        "```python\nraise SystemExit(3)\n```\n"
        "````python\nx = '```'\nraise SystemExit(4)\n````\n"
        "```py\nimport sys; sys.exit(0)\n```\n",
        encoding="utf-8",
    )
    found = script.snippets(readme)
    assert [(s.line, s.not_run) for s in found] == [(6, None), (11, "needs a key"), (14, None), (18, None)]
    assert found[2].code == "x = '```'\nraise SystemExit(4)\n"
    results = script.run(found)
    assert [(r.ok, r.returncode) for r in results] == [(True, 0), (True, None), (False, 4), (True, 0)]
    assert results[0].stdout == "one\n"
    assert script.main([str(readme)]) == 1


def test_a_snippets_traceback_points_at_the_readme_line(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# T\n\ntext\n\n```python\nx = 1\nundefined_name\n```\n", encoding="utf-8")
    (result,) = script.run(script.snippets(readme))
    assert not result.ok
    assert "line 7" in result.stderr and "NameError" in result.stderr


def test_snippets_run_without_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-should-not-leak-0000000000")
    readme = tmp_path / "README.md"
    readme.write_text(
        "```python\nimport os\nassert 'ANTHROPIC_API_KEY' not in os.environ\n```\n", encoding="utf-8"
    )
    assert all(r.ok for r in script.run(script.snippets(readme)))
