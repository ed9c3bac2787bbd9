"""Griffe extension for the API pages: Sphinx roles in docstrings become Markdown code spans.

The docstrings name objects the Sphinx way (``:class:`~.fused.FusedRNN```); mkdocstrings renders
docstrings as Markdown, where a role would show as literal text. Each role becomes a code span of
its target, only the last component when the target starts with ``~``; a paragraph ending in
reStructuredText's ``::`` ends in ``:``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|obj|exc|const):`(~?)([^`]+)`")
LITERAL_MARK = re.compile(r"::(\n\n|\s*$)")


def _code_span(match: re.Match[str]) -> str:
    short, target = match.groups()
    name = target.rsplit(".", 1)[-1] if short else target.lstrip(".")
    return f"`{name}`"


class SphinxRoles(griffe.Extension):
    """Rewrites each docstring as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = ROLE.sub(_code_span, obj.docstring.value)
            obj.docstring.value = LITERAL_MARK.sub(r":\1", text)
