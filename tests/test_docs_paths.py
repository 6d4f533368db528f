"""The README and the docs name no path that exists only on a developer's machine, and link nothing
outside the project (the pictures' alt text included)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# temporary folders, build machines, home folders, the shared folder beside the project, pytest's temp names
MACHINE_PATH = re.compile(
    r"(?<![\w.])/tmp/|(?<![\w.])/work/|(?<![\w.])/home/[A-Za-z0-9_.-]+|(?<![\w.])/root(?![\w-])|\.\./shared"
    r"|pytest-of-|pytest-\d+|[A-Za-z]:\\Users\\[A-Za-z0-9_.-]+"
)
LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]+)[^)]*\)")


def _docs() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def machine_paths(text: str) -> list[tuple[int, str]]:
    """(line number, offending text) of every machine-only path in ``text``."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        found += [(number, m.group(0)) for m in MACHINE_PATH.finditer(line)]
    return found


def test_the_pattern_finds_machine_paths_and_spares_ordinary_ones():
    text = "\n".join([
        "see /tmp/pytest-of-alex/pytest-3/test_x0/out.slp",
        "![a fly](/work/main/docs/images/a.png)",
        "cd /home/alex/flies-project",
        "open /root/data and ../shared/data/clip.mp4",
        r"C:\Users\alex\clip.mp4",
        "~/flies-project/models, models/, docs/images/labelling.png, data/root/x, a/tmp/b",
    ])
    assert [n for n, _ in machine_paths(text)] == [1, 1, 1, 2, 3, 4, 4, 5]


def test_readme_and_docs_name_no_path_of_a_developer_machine():
    problems = []
    for path in _docs():
        for number, hit in machine_paths(path.read_text(encoding="utf-8")):
            problems.append(f"{path.relative_to(ROOT)}:{number}: {hit}")
    assert not problems, "paths that exist only on one machine:\n" + "\n".join(problems)


def test_links_and_pictures_stay_inside_the_project_and_exist():
    problems = []
    for path in _docs():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in LINK.finditer(line):
                alt, target = match.groups()
                where = f"{path.relative_to(ROOT)}:{number}"
                if machine_paths(alt):
                    problems.append(f"{where}: alt text {alt!r}")
                if re.match(r"[a-z]+://|mailto:|#", target):
                    continue
                resolved = (path.parent / target.split("#")[0]).resolve()
                if not resolved.is_relative_to(ROOT):
                    problems.append(f"{where}: {target} is outside the project")
                elif not resolved.exists():
                    problems.append(f"{where}: {target} does not exist")
                elif match.group(0).startswith("!") and not alt.strip():
                    problems.append(f"{where}: picture {target} has no alt text")
    assert not problems, "\n".join(problems)
