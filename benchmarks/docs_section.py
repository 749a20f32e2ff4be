"""Write a benchmark's markdown results into a docs page, between two marker comments."""

from __future__ import annotations

from pathlib import Path


def replace_section(page: Path, start: str, end: str, markdown: str) -> None:
    """Put the results (title dropped, headings one level down) between the page's markers."""
    body = markdown.split("\n", 1)[1].lstrip("\n")
    body = "\n".join("#" + line if line.startswith("## ") else line for line in body.splitlines())
    text = page.read_text()
    head, sep, rest = text.partition(start)
    _, sep2, tail = rest.partition(end)
    if not (sep and sep2):
        raise SystemExit(f"{page.name}: markers {start} / {end} not found")
    page.write_text(f"{head}{start}\n{body.rstrip()}\n{end}{tail}")
