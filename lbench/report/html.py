"""A single self-contained HTML page: header sections, the plots (inline base64 PNG) and the tables."""

from __future__ import annotations

import base64
import html

from lbench.report.tables import Table

__all__ = ["html_page"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
img { max-width: 100%; margin: 0.5em 0 1.5em; }
ul.legend, p.note { font-size: 0.85em; color: #555; margin-top: -1em; }
"""


def html_page(title: str, sections: dict[str, list[str]], images: dict[str, bytes], tables: list[Table]) -> str:
    """Build the page.

    Args:
        title: Page title.
        sections: Heading -> sentences, each section shown as an ``<h2>`` and a list.
        images: Caption -> PNG bytes, embedded as ``data:`` URIs (no external file).
        tables: Tables, in order.

    Returns:
        The HTML text.
    """
    head = "".join(
        f"<h2>{html.escape(name)}</h2>\n<ul>\n"
        + "".join(f"<li>{html.escape(line)}</li>\n" for line in lines)
        + "</ul>\n"
        for name, lines in sections.items()
    )
    imgs = "".join(
        f'<figure><img alt="{html.escape(cap)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
        f"<figcaption>{html.escape(cap)}</figcaption></figure>\n"
        for cap, png in images.items()
    )
    body = "".join(t.html() for t in tables)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
        f"<style>{_CSS}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n{head}"
        f"{imgs}{body}</body>\n</html>\n"
    )
