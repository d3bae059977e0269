"""The user documentation stays true to the code: docs/configuration.md is what
scripts/gen_config_docs.py makes of ppocoder_jax/config.py now, the README stays a landing page
with the two set-up commands, every relative link in the README and docs/ resolves, and the
user pages carry no acceptance wording or scratch run paths."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from helpers.scripts import load_script

from ppocoder_jax.config import Config

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CONFIG_PAGE = DOCS / "configuration.md"
REGENERATE = "run `.venv/bin/python scripts/gen_config_docs.py` and commit docs/configuration.md"
# Pages other people own: linked to, not checked for wording here.
NOT_OURS = {DOCS / "ARCHITECTURE.md", DOCS / "problems.md"}


def _generator():
    return load_script("gen_config_docs")


def _config_keys() -> set[str]:
    """Every leaf key, nested sections (model.lora) spelled out as model.lora.rank."""

    def keys_of(prefix, obj):
        out = set()
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                out |= keys_of(f"{prefix}.{f.name}", value)
            else:
                out.add(f"{prefix}.{f.name}")
        return out

    keys = set()
    for section in dataclasses.fields(Config):
        keys |= keys_of(section.name, section.default_factory())
    return keys


def _documented_keys(text: str) -> set[str]:
    return set(re.findall(r"^\| `([a-z_]+(?:\.[a-z_0-9]+)+)` \|", text, re.M))


def test_configuration_page_documents_every_key_and_no_other():
    assert CONFIG_PAGE.is_file(), f"docs/configuration.md is missing: {REGENERATE}"
    documented = _documented_keys(CONFIG_PAGE.read_text())
    keys = _config_keys()
    missing, stale = sorted(keys - documented), sorted(documented - keys)
    assert not missing, f"config keys not in docs/configuration.md: {missing}; {REGENERATE}"
    assert not stale, f"docs/configuration.md documents removed keys: {stale}; {REGENERATE}"


def test_configuration_page_is_what_the_generator_makes():
    text = _generator().render()
    assert _documented_keys(text) == _config_keys()
    assert CONFIG_PAGE.read_text() == text, f"docs/configuration.md is stale: {REGENERATE}"


def _row(text: str, key: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| `{key}` |"))


def test_generator_takes_types_defaults_and_the_comments_above_each_field():
    text = _generator().render()
    row = _row(text, "ppo.old_logprobs")
    assert '`"recompute"`, `"sampler"`' in row and '| `"recompute"` |' in row
    assert "teacher-forced pass" in row  # the comment above the field
    assert _row(text, "data.num_train").endswith("| int | `0` | 0 = all |")  # on its own line
    assert "| list of int | `[32, 64, 128, 256, 400, 512]` |" in _row(
        text, "rollout.length_buckets"
    )
    assert "&lt;run_dir&gt;" in _row(text, "reward.max_error_frac")  # not an HTML tag


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"


def test_readme_is_a_landing_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    # what CI and users run
    assert "\n    scripts/run.sh demo\n" in text and "\n    scripts/run.sh test\n" in text
    for page in ("quickstart", "configuration", "commands", "models", "algorithms", "rewards"):
        assert f"(docs/{page}.md)" in text
    assert "(docs/ARCHITECTURE.md)" in text and "(docs/problems.md)" in text
    assert "docs/img/demo/" in text


@pytest.mark.parametrize(
    "page",
    [p for p in _pages() if p not in NOT_OURS],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_user_pages_carry_no_acceptance_wording_or_scratch_runs(page):
    text = page.read_text()
    for pattern in (r"\bfloors?\b", r"\bissue \d+", r"\bissue's\b", r"runs/s\d+/"):
        found = re.findall(pattern, text, re.I)
        assert not found, f"{page.relative_to(ROOT)}: {found}"


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_repository_paths_named_in_the_docs_exist(page):
    """Every repository file a page names (`configs/...`, `scripts/...`, `ppocoder_jax/...`,
    `tests/...`, `docs/...`, in code spans or code blocks) is there."""
    text = page.read_text()
    named = set(
        re.findall(
            r"(?<![\w./-])((?:configs|scripts|ppocoder_jax|tests|docs)/[\w./-]*\.(?:py|yaml|md|jsonl|sh|png|json))",
            text,
        )
    )
    placeholder = re.compile(r"(^|/)[A-Z_]+\.")  # configs/NAME.yaml: a name to fill in
    missing = sorted(p for p in named if not placeholder.search(p) and not (ROOT / p).exists())
    assert not missing, f"{page.relative_to(ROOT)} names missing files: {missing}"
