"""The documents say what the code does: the deployment page lists the routes the server serves,
and every relative Markdown link points at a file (and heading) that exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from lib.server.routes import ROUTES

REPO = Path(__file__).resolve().parents[1]
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_the_deployment_page_lists_exactly_the_served_routes():
    page = (REPO / "docs" / "deployment.md").read_text()
    table = page.split("<!-- routes:", 1)[1].split("<!-- /routes -->", 1)[0]
    rows = [tuple(cell.strip().strip("`") for cell in line.strip("|").split("|"))
            for line in table.splitlines() if line.startswith("| ") and not line.startswith("| method")]
    assert rows == [(r.method, r.path, r.role.value if r.role else "public") for r in ROUTES]


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(markdown: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", markdown.read_text(encoding="utf-8"), flags=re.S)
    return {_anchor(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def test_markdown_links_point_at_what_exists():
    tracked = subprocess.run(["git", "ls-files", "*.md"], cwd=REPO, capture_output=True, text=True, check=True)
    broken = []
    for name in tracked.stdout.split():
        page = REPO / name
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in _LINK.findall(text):
            if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            linked = (page.parent / file_part).resolve() if file_part else page
            if not linked.exists():
                broken.append(f"{name}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_make_help_lists_every_target():
    makefile = (REPO / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", makefile, re.M)
    assert phony, "the Makefile has no .PHONY line"
    shown = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    listed = {line.split()[1] for line in shown.splitlines() if line.startswith("make ")}
    assert set(phony.group(1).split()) - listed == set()
