"""Escaping user and file text before it goes into gr.Markdown."""
import re

_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&])")


def md_escape(text: str) -> str:
    """Backslash-escape Markdown and HTML characters so the text shows literally."""
    return _SPECIAL.sub(r"\\\1", str(text))
