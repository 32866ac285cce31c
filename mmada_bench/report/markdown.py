"""The small Markdown subset of the gate report (headings, bullets, pipe tables, **bold**, `code`) as HTML."""
from __future__ import annotations

import html
import re

#: the gate report's status icons -> a coloured dot (headless browsers often lack an emoji font)
ICONS = {"\u2705": '<span style="color:#1a7f37">\u25cf</span>', "\u274c": '<span style="color:#cf222e">\u25cf</span>',
         "\u26a0\ufe0f": '<span style="color:#bf8700">\u25cf</span>'}


def inline(text: str) -> str:
    """Escaped text with ``**bold**`` and ```code``` spans; status icons as coloured dots."""
    out = html.escape(text, quote=False)
    for icon, dot in ICONS.items():
        out = out.replace(icon, dot)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split(" | ")]


def to_html(markdown: str) -> str:
    """HTML of ``markdown`` (the subset :func:`mmada_bench.gate.markdown_report` writes)."""
    parts, bullets, table = [], [], []

    def flush():
        if bullets:
            parts.append("<ul>" + "".join(f"<li>{inline(b)}</li>" for b in bullets) + "</ul>")
            bullets.clear()
        if table:
            head, body = table[0], [r for r in table[1:] if not set(r.replace("|", "").strip()) <= set("-: ")]
            parts.append("<table><thead><tr>" + "".join(f"<th>{inline(c)}</th>" for c in _cells(head))
                         + "</tr></thead><tbody>" + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in _cells(r))
                                                            + "</tr>" for r in body) + "</tbody></table>")
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            if bullets:
                flush()
            table.append(line)
            continue
        if table:
            flush()
        heading = re.match(r"(#{1,6})\s+(.*)", line)
        if heading:
            flush()
            level = min(6, len(heading.group(1)) + 1)  # the report's ## sits below the page's h2
            parts.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
        elif line.startswith(("* ", "- ")):
            bullets.append(line[2:])
        elif line.strip():
            flush()
            parts.append(f"<p>{inline(line)}</p>")
    flush()
    return "\n".join(parts)
