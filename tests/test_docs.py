"""The user documentation in ``docs/`` stays true to the code.

* every ``__init__`` parameter of ``SQSBackend``, ``DynamoDBBackend`` and ``KafkaBackend``
  (and every transport option their ``**transport_options`` accept) has a row in the
  configuration table of that backend's page, with the code's default in its default cell;
* every ``LifecycleConfig`` field has a row, with its default, in ``docs/configuration.md``;
* every exception class exported by ``asyncmq_cloud.errors`` has a section in
  ``docs/troubleshooting.md``;
* every relative Markdown link in ``docs/*.md`` points at an existing file (and heading).

No services are needed. The ``test_check_*`` tests feed each check a broken document to
show that it fails.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from asyncmq_cloud import errors
from asyncmq_cloud.backends.dynamodb import DynamoDBBackend
from asyncmq_cloud.backends.kafka import KafkaBackend
from asyncmq_cloud.backends.sqs import SQSBackend
from asyncmq_cloud.config import LifecycleConfig
from asyncmq_cloud.transports._kafka_config import KafkaTransportConfig
from asyncmq_cloud.transports.sqs import SQSTransportConfig

DOCS = Path(__file__).resolve().parents[1] / "docs"

#: backend class -> (its page, the pydantic model behind its ``**transport_options``)
BACKENDS: dict[type, tuple[str, type[BaseModel] | None]] = {
    SQSBackend: ("sqs.md", SQSTransportConfig),
    DynamoDBBackend: ("dynamodb.md", None),
    KafkaBackend: ("kafka.md", KafkaTransportConfig),
}

_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.M)


# -- helpers ---------------------------------------------------------------------------
def _without_code_blocks(text: str) -> str:
    return _FENCE.sub("", text)


def _section(text: str, title: str) -> str:
    """The text under the ``## {title}`` heading, up to the next heading of level 2."""
    match = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no '## {title}' section"
    return match.group(1)


def _cells(line: str) -> list[str]:
    # split on pipes that are not escaped (``str \| None``)
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def table_rows(text: str) -> dict[str, dict[str, str]]:
    """Every Markdown table row of ``text``: first-cell name (backticks, ``**`` kept off) -> header -> cell."""
    rows: dict[str, dict[str, str]] = {}
    lines = _without_code_blocks(text).splitlines()
    i = 0
    while i < len(lines):
        if lines[i].lstrip().startswith("|") and i + 1 < len(lines) and set(lines[i + 1].strip()) <= set("|-: "):
            header = [h.lower() for h in _cells(lines[i])]
            i += 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                cells = _cells(lines[i])
                name = cells[0].strip("`")
                rows[name] = dict(zip(header, cells, strict=False))
                i += 1
            continue
        i += 1
    return rows


def render_default(value: Any) -> str:
    """How a default is written in the docs' default cells."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict) and not value:
        return "{}"
    return repr(value)


def missing_rows(rows: dict[str, dict[str, str]], expected: dict[str, Any]) -> list[str]:
    """Names without a row, and rows whose default cell lacks the code's default (``...`` = no default)."""
    problems = []
    for name, default in expected.items():
        row = rows.get(name)
        if row is None:
            problems.append(f"{name}: no row")
            continue
        if default is ...:
            continue
        wanted = f"`{render_default(default)}`"
        if wanted not in row.get("default", ""):
            problems.append(f"{name}: default cell {row.get('default')!r} lacks {wanted}")
    return problems


def _signature_defaults(cls: type) -> dict[str, Any]:
    expected: dict[str, Any] = {}
    for param in inspect.signature(cls.__init__).parameters.values():
        if param.name == "self":
            continue
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            expected[f"**{param.name}"] = ...
        else:
            expected[param.name] = ... if param.default is inspect.Parameter.empty else param.default
    return expected


def _model_defaults(model: type[BaseModel]) -> dict[str, Any]:
    expected: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if field.default is not PydanticUndefined:
            expected[name] = field.default
        elif field.default_factory is not None:
            expected[name] = field.default_factory()  # type: ignore[call-arg]
        else:
            expected[name] = ...
    return expected


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def broken_links(path: Path, text: str) -> list[str]:
    """Relative links of ``text`` (the file ``path``) whose target file or heading does not exist."""
    problems = []
    for target in _LINK.findall(_without_code_blocks(text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if file_part and not resolved.is_file():
            problems.append(f"{path.name}: {target} -> no file {resolved}")
            continue
        if anchor and resolved.suffix == ".md":
            body = resolved.read_text() if file_part else text
            anchors = {slug(h) for h in _HEADING.findall(_without_code_blocks(body))}
            if anchor not in anchors:
                problems.append(f"{path.name}: {target} -> no heading #{anchor} in {resolved.name}")
    return problems


def _doc(name: str) -> str:
    path = DOCS / name
    assert path.is_file(), f"docs/{name} is missing"
    return path.read_text()


# -- the checks ------------------------------------------------------------------------
@pytest.mark.parametrize("backend", list(BACKENDS), ids=lambda cls: cls.__name__)
def test_backend_options_documented(backend: type) -> None:
    page, transport_model = BACKENDS[backend]
    rows = table_rows(_section(_doc(page), "Configuration reference"))
    expected = _signature_defaults(backend)
    if transport_model is not None:
        assert "**transport_options" in expected, f"{backend.__name__} no longer takes **transport_options"
        for name, default in _model_defaults(transport_model).items():
            expected.setdefault(name, default)  # the backend's own default wins where both exist
    problems = missing_rows(rows, expected)
    assert not problems, f"docs/{page} configuration table: " + "; ".join(problems)


def test_lifecycle_config_documented() -> None:
    rows = table_rows(_section(_doc("configuration.md"), "`LifecycleConfig`"))
    problems = missing_rows(rows, _model_defaults(LifecycleConfig))
    assert not problems, "docs/configuration.md LifecycleConfig table: " + "; ".join(problems)


def test_offload_settings_documented() -> None:
    import dataclasses

    from asyncmq_cloud.stores.offload import S3Offload

    fields = {f.name: ... if f.default is dataclasses.MISSING else f.default for f in dataclasses.fields(S3Offload)}
    problems = missing_rows(table_rows(_section(_doc("offload.md"), "Settings (`S3Offload`)")), fields)
    assert not problems, "docs/offload.md S3Offload table: " + "; ".join(problems)


def test_every_error_has_a_troubleshooting_section() -> None:
    headings = set(_HEADING.findall(_doc("troubleshooting.md")))
    exported = [name for name in errors.__all__ if isinstance(getattr(errors, name), type)]
    assert exported, "asyncmq_cloud.errors exports no exception class"
    missing = [name for name in exported if f"`{name}`" not in headings]
    assert not missing, f"docs/troubleshooting.md has no '## `Name`' section for {missing}"


def test_relative_links_resolve() -> None:
    pages = sorted(DOCS.glob("*.md"))
    assert len(pages) >= 7
    problems = [p for page in pages for p in broken_links(page, page.read_text())]
    assert not problems, "\n".join(problems)


# -- each check can fail ----------------------------------------------------------------
SAMPLE = """
## Configuration reference

| option | type | default | meaning |
|---|---|---|---|
| `alpha` | str \\| None | `None` | a |
| `beta` | int | `3` | b |

```
| `gamma` | in a code block | `1` | not a row |
```
"""


def test_check_missing_row_and_wrong_default_fail() -> None:
    rows = table_rows(_section(SAMPLE, "Configuration reference"))
    assert rows["alpha"]["type"] == "str | None"
    assert missing_rows(rows, {"alpha": None, "beta": 3}) == []
    assert missing_rows(rows, {"alpha": None, "beta": 4}) == ["beta: default cell '`3`' lacks `4`"]
    assert missing_rows(rows, {"gamma": 1}) == ["gamma: no row"]


def test_check_missing_section_fails() -> None:
    with pytest.raises(AssertionError, match="no '## Semantics' section"):
        _section(SAMPLE, "Semantics")


def test_check_broken_link_fails(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n\n## Some `Heading` (here)\n")
    page = tmp_path / "b.md"
    good = "[x](a.md) [y](a.md#some-heading-here) [z](https://example.com/none.md) [w](#b)\n# B\n"
    assert broken_links(page, good) == []
    bad = "[x](missing.md) [y](a.md#nowhere)\n```\n[z](also-missing.md)\n```\n"
    assert [p.split(" -> ")[0] for p in broken_links(page, bad)] == ["b.md: missing.md", "b.md: a.md#nowhere"]
