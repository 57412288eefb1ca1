"""docs/recipes.md prints five templates as the templates its real files are tested with
(tests/data/real/, their F1 bounds in scores.yaml): each printed template must gate as
that file does, so the page cannot drift from what was measured."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from immunomon.gating.template import load_template, parse_template

ROOT = Path(__file__).resolve().parent.parent
RECIPE = re.compile(r"<!-- recipe: (\S+) -->\n```yaml\n(.*?)```", re.S)


def test_each_recipe_is_the_template_its_real_file_is_tested_with():
    page = (ROOT / "docs" / "recipes.md").read_text(encoding="utf-8")
    recipes = RECIPE.findall(page)
    assert len(recipes) == 5
    with open(ROOT / "tests" / "data" / "real" / "scores.yaml", encoding="utf-8") as handle:
        scored = {case["template"] for case in yaml.safe_load(handle).values()}
    for path, text in recipes:
        printed = parse_template(text, f"docs/recipes.md ({path})")
        assert printed.digest == load_template(ROOT / path).digest, path
        assert Path(path).name in scored, path
