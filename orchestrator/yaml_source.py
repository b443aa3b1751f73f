"""Strict YAML for grid and profile files: plain values only, every key's position kept, and bounded
work on any input.

PyYAML's `safe_load` is safe against code execution but not strict enough for a file that decides
what runs on a cluster: a duplicate key silently replaces the first (a second `fixed:` turned a
10-job grid into a 160-job one), deep nesting raises RecursionError from its recursive composer, an
alias bomb expands into billions of values the moment anything walks the result, and its errors name
`<unicode string>`. So the document is built here from PyYAML's event stream (its scanner and parser
keep explicit stacks; nothing below recurses), with these rules:

- one document, of mappings, lists and scalars; the only tags are the core scalar ones (str, int,
  float, bool, null): `!!python/...`, `!!set`, custom tags and the like are refused;
- keys are strings and appear once per mapping (a duplicate names both lines);
- at most MAX_BYTES, MAX_DEPTH levels of nesting and MAX_NODES values, an alias counting as
  everything it stands for, so that reading and walking the result stays cheap;
- `1e-2` is a float, as in YAML 1.2 (YAML 1.1 demands `1.0e-2`);
- `<<: *anchor` merge keys work as in PyYAML: the merged mapping's keys, unless given explicitly.

Every problem is a GridError naming `file:line:column`. The result keeps the position of every key
and list item by key path, so later checks can name where a value was written.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import GridError, OrchError, Problem, clip, got, nearest, short

# The limits keep the worst file inside the 2 s promise: PyYAML's pure-Python scanner reads about a
# megabyte of comment or 25,000 list values a second on a loaded 2-core machine. Real grids are a few
# kilobytes and a few hundred values (a 10^12-job product takes 4,000).
MAX_BYTES = 512 * 1024
MAX_DEPTH = 32  # a grid needs 5 levels (scales.small.zip[0].lr[1])
MAX_NODES = 20_000  # values in the document, each alias counted as what it expands to
MARK_DEPTH = 8  # positions are kept for key paths up to this long (deeper ones use their parent's)

_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null")}
_IMPLICIT_TAGS = _SCALAR_TAGS | {_CORE + "timestamp"}  # what plain scalars may resolve to, as in safe_load
_MERGE = _CORE + "merge"
_MERGE_KEY = object()  # stands for a `<<` key while its value is read


class _Loader(yaml.SafeLoader):
    """The safe loader's scanner, parser, resolver and scalar constructors, with YAML 1.2 floats."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


@dataclass
class Document:
    source: str
    text: str
    data: Any
    marks: dict[tuple, tuple[int, int]] = field(default_factory=dict)  # key path -> (line, column)

    def position(self, path: tuple) -> tuple[int, int] | None:
        """Where `path` was written, or its nearest written ancestor (a merged or aliased value has
        no position of its own)."""
        path = tuple(path)[:MARK_DEPTH]
        while path:
            if path in self.marks:
                return self.marks[path]
            path = path[:-1]
        return None


def read_yaml(path: str | Path, what: str) -> Document:
    """Reads and parses one file; `what` names it in messages ("grid file", "profile")."""
    path = Path(path)
    source = str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)  # bounded even for /dev/zero or a FIFO
    except OSError as e:
        guess = _nearest_file(path) if isinstance(e, FileNotFoundError) else None
        hint = f"; did you mean {guess}?" if guess else ""
        raise OrchError(f"{source}: cannot read {what} ({e.strerror}){hint}") from None
    if len(data) > MAX_BYTES:
        raise GridError(source, [Problem("", f"larger than {MAX_BYTES // 1024} KiB: not a {what}")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise GridError(source, [Problem("", f"not UTF-8 text: byte 0x{data[e.start]:02x} at offset {e.start}",
                                         (line, column))]) from None
    return parse_yaml(text, source)


def _nearest_file(path: Path) -> str | None:
    try:
        siblings = [p.name for p in path.parent.iterdir() if p.suffix in (".yaml", ".yml")][:1000]
    except OSError:
        return None
    guess = nearest(path.name, siblings)
    return str(path.parent / guess) if guess else None


def parse_yaml(text: str, source: str) -> Document:
    if len(text) > MAX_BYTES:
        raise GridError(source, [Problem("", f"longer than {MAX_BYTES // 1024} Ki characters: not a grid or profile")])
    builder = _Builder(source)
    try:
        loader = _Loader(text)  # the reader refuses non-printable characters here
        try:
            while loader.check_event():
                builder.feed(loader, loader.get_event())
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = e.problem or e.context
        if e.context and e.problem:
            started = f" that starts on line {e.context_mark.line + 1}" if e.context_mark else ""
            what += f" ({e.context}{started})"
        raise GridError(source, [Problem("", f"not valid YAML: {clip(what, 200)}", _at(mark))]) from None
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        column = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        what = f"character #x{e.character:04x} is not allowed" if isinstance(e.character, int) else e.reason
        raise GridError(source, [Problem("", f"not valid YAML: {what}", (line, column))]) from None
    except yaml.YAMLError as e:
        raise GridError(source, [Problem("", f"not valid YAML: {clip(str(e).splitlines()[0], 160)}")]) from None
    return Document(source, text, builder.root, builder.marks)


def _at(mark) -> tuple[int, int] | None:
    return (mark.line + 1, mark.column + 1) if mark is not None else None


def _tag_name(tag: str) -> str:
    return clip("!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag)


@dataclass
class _Open:
    """A mapping or list being built."""
    path: tuple
    value: dict | list
    anchor: str | None
    first_node: int  # the node count when it started: its size is the count at its end minus this
    key: Any = None  # mapping: the key waiting for its value
    has_key: bool = False
    key_lines: dict = field(default_factory=dict)  # mapping: key -> line it was written on
    merged: list = field(default_factory=list)  # mapping: the mappings of its `<<` keys, in order


class _Builder:
    """Turns parser events into plain dicts, lists and scalars with an explicit stack."""

    def __init__(self, source: str):
        self.source = source
        self.stack: list[_Open] = []
        self.anchors: dict[str, tuple[Any, int]] = {}  # anchor -> (value, nodes it stands for)
        self.nodes = 0
        self.documents = 0
        self.root: Any = None
        self.marks: dict[tuple, tuple[int, int]] = {}

    def fail(self, message: str, mark) -> None:
        raise GridError(self.source, [Problem("", message, _at(mark))])

    def count(self, n: int, mark) -> None:
        self.nodes += n
        if self.nodes > MAX_NODES:
            self.fail(f"more than {MAX_NODES:,} values (an alias counts as all it stands for): "
                      "not a grid or profile", mark)

    def feed(self, loader: _Loader, event) -> None:
        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                self.fail("a second YAML document starts here: the file must hold one", event.start_mark)
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            mapping = isinstance(event, yaml.MappingStartEvent)
            expected = _CORE + ("map" if mapping else "seq")
            if event.tag not in (None, "!", expected):
                self.fail(f"tag {_tag_name(event.tag)} is not allowed: only plain mappings, lists and values",
                          event.start_mark)
            if len(self.stack) >= MAX_DEPTH:
                self.fail(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            self.count(1, event.start_mark)
            path = self.place(event.start_mark, {} if mapping else [])
            self.check_anchor(event.anchor, event.start_mark)
            self.stack.append(_Open(path, {} if mapping else [], event.anchor, self.nodes - 1))
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            done = self.stack.pop()
            if done.merged:  # as PyYAML merges: explicit keys win, then the earlier of the merged mappings
                merged: dict = {}
                for source in reversed(done.merged):
                    merged.update(source)
                done.value = {**merged, **done.value}
            if done.anchor is not None:
                self.anchors[done.anchor] = (done.value, self.nodes - done.first_node)
            self.deliver(done.value, event.start_mark)
        elif isinstance(event, yaml.ScalarEvent):
            self.count(1, event.start_mark)
            value, tag = self.scalar(loader, event)
            if tag == _MERGE and self.stack and isinstance(self.stack[-1].value, dict) and not self.stack[-1].has_key:
                self.stack[-1].key, self.stack[-1].has_key = _MERGE_KEY, True
                return
            self.place(event.start_mark, value)
            self.check_anchor(event.anchor, event.start_mark)
            if event.anchor is not None:
                self.anchors[event.anchor] = (value, 1)
            self.deliver(value, event.start_mark)
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in self.anchors:
                inside = any(o.anchor == event.anchor for o in self.stack)
                self.fail(f"alias *{clip(event.anchor)} " + ("refers to a node that contains it" if inside
                                                             else "names no anchor defined before it"),
                          event.start_mark)
            value, size = self.anchors[event.anchor]
            self.count(size, event.start_mark)
            self.place(event.start_mark, value)
            self.deliver(value, event.start_mark)

    def check_anchor(self, anchor: str | None, mark) -> None:
        if anchor is not None and (anchor in self.anchors or any(o.anchor == anchor for o in self.stack)):
            self.fail(f"anchor &{clip(anchor)} is defined twice", mark)

    def scalar(self, loader: _Loader, event) -> tuple[Any, str]:
        tag = event.tag
        if tag is None or tag == "!":
            tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
            allowed = _IMPLICIT_TAGS | {_MERGE}
        else:
            allowed = _SCALAR_TAGS
        if tag == _CORE + "value":  # a plain `=`: YAML 1.1's "default value" key, a string to us
            return event.value, _CORE + "str"
        if tag not in allowed:
            self.fail(f"tag {_tag_name(tag)} is not allowed: only plain mappings, lists and values", event.start_mark)
        if tag == _MERGE:
            return event.value, tag
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            return loader.yaml_constructors[tag](loader, node), tag
        except (ValueError, OverflowError) as e:  # 2024-13-45 as a date; an integer of 5,000 digits
            self.fail(f"{short(event.value)} is not a valid {_tag_name(tag)[2:]} ({clip(str(e))})", event.start_mark)

    def place(self, mark, value) -> tuple:
        """Where the node starting at `mark` goes; records its position. Refuses a key that is not a
        string. Returns its key path (for a key: the path of the value it introduces)."""
        if not self.stack:
            return ()
        parent = self.stack[-1]
        if isinstance(parent.value, list):
            path = parent.path + (len(parent.value),)
        elif not parent.has_key:
            if not isinstance(value, str):
                what = {dict: "a mapping", list: "a list"}.get(type(value)) or got(value)
                self.fail(f"keys must be names (strings), got {what}", mark)
            path = parent.path + (value,)
        else:
            return parent.path if parent.key is _MERGE_KEY else parent.path + (parent.key,)
        if len(path) <= MARK_DEPTH:
            self.marks.setdefault(path, _at(mark))
        return path

    def deliver(self, value, mark) -> None:
        if not self.stack:
            self.root = value
            return
        parent = self.stack[-1]
        if isinstance(parent.value, list):
            parent.value.append(value)
        elif not parent.has_key:
            if value in parent.key_lines:
                self.fail(f"duplicate key '{clip(value)}': first on line {parent.key_lines[value]}, "
                          f"again on line {mark.line + 1}", mark)
            parent.key_lines[value] = mark.line + 1
            parent.key, parent.has_key = value, True
        else:
            if parent.key is _MERGE_KEY:
                sources = value if isinstance(value, list) else [value]
                if not all(isinstance(s, dict) for s in sources):
                    self.fail("a merge key (<<) takes a mapping or a list of mappings", mark)
                parent.merged.extend(sources)
            else:
                parent.value[parent.key] = value
            parent.key, parent.has_key = None, False
