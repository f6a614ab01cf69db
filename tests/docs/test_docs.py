"""The README and docs/ stay navigable and true to the settings.

- every relative link in README.md and docs/*.md points at a file that exists, and every
  ``#anchor`` at a heading of that file (GitHub's slugs);
- the README links to every page in docs/;
- docs/configuration.md lists exactly the environment variables that the settings read.

Plain file reads: no database, no Django set-up, a fraction of a second.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"

# Variables configuration.md documents although no settings module reads them.
READ_ELSEWHERE = {
    "PORT",  # bin/serve and the Procfile: the port gunicorn binds
    "PROMETHEUS_MULTIPROC_DIR",  # prometheus-client, in the web process's real environment
}

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) and ![alt](target); the text may hold `code` but no brackets.
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
INLINE_CODE = re.compile(r"`[^`]*`")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, numbered from 1."""
    lines, in_fence = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            lines.append((number, line))
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: markup dropped, lower case, punctuation removed,
    spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays
    text = text.replace("`", "")
    text = re.sub(r"<[^>]+>", "", text)
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor of a file's headings; repeated headings get -1, -2, … as on GitHub."""
    seen: dict[str, int] = {}
    result = set()
    for _, line in prose_lines(path):
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        if slug in seen:
            seen[slug] += 1
            slug = f"{slug}-{seen[slug]}"
        else:
            seen[slug] = 0
        result.add(slug)
    return result


def links(path: Path) -> list[tuple[int, str]]:
    """Link targets outside code, with their line numbers."""
    found = []
    for number, line in prose_lines(path):
        text = INLINE_CODE.sub("", line)
        found += [(number, target) for target in INLINE_LINK.findall(text)]
        definition = REFERENCE_DEFINITION.match(text)
        if definition:
            found.append((number, definition.group(1)))
    return found


def broken_links(path: Path) -> list[str]:
    problems = []
    for number, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        where = f"{path.relative_to(ROOT)}:{number}: {target}"
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            problems.append(f"{where}: no such file")
        elif not linked.is_relative_to(ROOT):
            problems.append(f"{where}: outside the repository")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            problems.append(f"{where}: no heading with the anchor #{anchor}")
    return problems


@pytest.mark.parametrize("path", markdown_files(), ids=lambda path: path.name)
def test_every_relative_link_resolves(path):
    problems = broken_links(path)
    assert not problems, "\n".join(problems)


def test_readme_links_to_every_docs_page():
    linked = {
        (ROOT / target.partition("#")[0]).resolve()
        for _, target in links(ROOT / "README.md")
        if target.startswith("docs/")
    }
    unlinked = [page.name for page in sorted(DOCS.glob("*.md")) if page.resolve() not in linked]
    assert not unlinked, f"README.md does not link to: {', '.join(unlinked)}"


# --- configuration.md against the settings -------------------------------------------------


def settings_modules() -> list[Path]:
    package = ROOT / "config" / "settings"
    return sorted(package.glob("*.py")) if package.is_dir() else [ROOT / "config" / "settings.py"]


def _string_argument(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def _is_os_environ(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def variables_read(source: str) -> set[str]:
    """Names read by ``env(...)``, ``env.<type>(...)`` (django-environ), ``os.environ.get``,
    ``os.environ[...]`` and ``os.getenv``."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func, name = node.func, _string_argument(node)
            if name is None:
                continue
            if isinstance(func, ast.Name) and func.id == "env":
                names.add(name)
            elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                if func.value.id == "env" or (func.value.id == "os" and func.attr == "getenv"):
                    names.add(name)
            elif isinstance(func, ast.Attribute) and func.attr == "get":
                if _is_os_environ(func.value):
                    names.add(name)
        elif isinstance(node, ast.Subscript) and _is_os_environ(node.value):
            key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                names.add(key.value)
    return names


def variables_documented(text: str) -> set[str]:
    """The variables in the first column of configuration.md's tables."""
    return set(re.findall(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|", text, re.MULTILINE))


def test_settings_reader_finds_each_way_of_reading_a_variable():
    source = (
        "A = env.int('ONE', default=1)\nB = env('TWO')\nC = os.environ.get('THREE')\n"
        "D = os.environ['FOUR']\nE = os.getenv('FIVE')\nenviron.Env.read_env('x')\n"
    )
    assert variables_read(source) == {"ONE", "TWO", "THREE", "FOUR", "FIVE"}


def test_configuration_lists_every_variable_the_settings_read():
    read = set().union(*(variables_read(path.read_text()) for path in settings_modules()))
    assert len(read) > 20, "the settings reader found too few variables: has settings changed?"
    documented = variables_documented(CONFIGURATION.read_text())

    missing, unknown = sorted(read - documented), sorted(documented - read - READ_ELSEWHERE)
    assert not missing, f"read by the settings, missing in docs/configuration.md: {missing}"
    assert not unknown, f"in docs/configuration.md, but no setting reads it: {unknown}"


def test_env_example_names_the_same_variables_as_the_settings():
    read = set().union(*(variables_read(path.read_text()) for path in settings_modules()))
    # Lines "NAME=value" and, for defaults left as they are, "# NAME=value".
    named = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))

    missing, unknown = sorted(read - named), sorted(named - read - READ_ELSEWHERE)
    assert not missing, f"read by the settings, missing in .env.example: {missing}"
    assert not unknown, f"in .env.example, but no setting reads it: {unknown}"
