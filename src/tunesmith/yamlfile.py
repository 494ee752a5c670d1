"""A YAML config file read safely: a bounded regular file in UTF-8, one document, and a node graph checked before
anything is built from it (duplicate keys, alias bombs, runaway nesting, huge integers), each problem at its line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tunesmith.errors import ConfigError, file_problem

MAX_CONFIG_BYTES = 2**20  # settings, not data: a config is a few hundred bytes
MAX_YAML_VALUES = 10_000  # values once aliases are expanded (a config has ~60; a billion-laughs bomb 10**9)
MAX_YAML_DEPTH = 32  # mappings and lists within each other (a config is 3 deep)
MAX_INT_DIGITS = 64
SURROGATE = re.compile("[\ud800-\udfff]")
_INT_TAG, _MERGE_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:merge"
_CONSTRUCTED_TAGS = {_INT_TAG, "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp"}
Key = tuple[str | int, ...]


class YamlProblem(Exception):
    """YAML that parses but is beyond the limits, or ambiguous (a duplicate key): at a line and key path."""

    def __init__(self, reason: str, line: int | None = None, key: Key = ()):
        super().__init__(reason)
        self.reason, self.line, self.key = reason, line, key


def dotted(key: Key) -> str:
    """`("lora", "targets", 0)` -> `lora.targets[0]`."""
    out = ""
    for part in key:
        out += f"[{part}]" if isinstance(part, int) else (f".{shown(part)}" if out else shown(part))
    return out


def shown(text: str, most: int = 80) -> str:
    """Text for a one-line message: surrogates and line breaks escaped, cut to `most` characters."""
    if not (text.isascii() and text.isprintable()):
        text = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= most else text[: most - 3] + "..."


def read_yaml(text: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    """One YAML document as a value, and the 1-based line of each mapping key (by key path).

    The node graph is checked before anything is built from it (`_inspect`, `_check_size`), so duplicate keys,
    alias bombs, runaway nesting and overlong integers are a `YamlProblem` at once. Syntax errors stay
    `yaml.YAMLError`.
    """
    deep = _deep_flow_line(text)  # before PyYAML: its scanner slows down per open bracket, its composer recurses
    if deep is not None:
        raise YamlProblem(f"nested more than {MAX_YAML_DEPTH} levels deep", deep)
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except RecursionError:  # block nesting (indentation) past the composer's recursion
            raise YamlProblem(f"nested more than {MAX_YAML_DEPTH} levels deep", _deep_block_line(text)) from None
        if root is None:
            return None, {}
        lines = _inspect(root, loader)
        _check_size(root)
        try:
            return loader.construct_document(root), lines
        except (ValueError, OverflowError) as e:  # scalars were built in _inspect: a last guard
            raise YamlProblem(f"invalid value: {shown(str(e))}") from None
    finally:
        loader.dispose()


def _inspect(root: yaml.Node, loader: yaml.SafeLoader) -> dict[tuple[str, ...], int]:
    """Walk the nodes in file order (each once: aliases share nodes): refuse duplicate keys and bad scalars;
    return each mapping key's line."""
    lines: dict[tuple[str, ...], int] = {}
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, Key]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            _check_scalar(node, loader, path)
            continue
        children: list[tuple[yaml.Node, Key]] = []
        if isinstance(node, yaml.SequenceNode):
            children = [(child, (*path, i)) for i, child in enumerate(node.value)]
        else:
            first: dict[str, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    children += [(key_node, path), (value_node, path)]
                    continue
                key, line = key_node.value, key_node.start_mark.line + 1
                _check_scalar(key_node, loader, (*path, key))
                if key in first:
                    reason = f"duplicate key (first given at line {first[key]}; YAML would silently keep the last)"
                    raise YamlProblem(reason, line, (*path, key))
                first[key] = line
                lines[tuple(str(p) for p in (*path, key))] = line
                children.append((value_node, (*path, key)))
        stack.extend(reversed(children))
    return lines


def _check_scalar(node: yaml.ScalarNode, loader: yaml.SafeLoader, path: Key) -> None:
    line, value = node.start_mark.line + 1, node.value
    if SURROGATE.search(value):
        raise YamlProblem("holds a lone UTF-16 surrogate (an escape such as \\ud800 that is not text)", line, path)
    if node.tag == _INT_TAG and len(value.lstrip("+-").replace("_", "")) > MAX_INT_DIGITS:
        digits = len(value.lstrip("+-").replace("_", ""))
        raise YamlProblem(f"an integer of {digits:,} digits, more than the {MAX_INT_DIGITS} allowed", line, path)
    if node.tag in _CONSTRUCTED_TAGS:  # built now, so that a bad one (a 13th month) is named at its line
        try:
            loader.construct_object(node)
        except (ValueError, OverflowError) as e:
            raise YamlProblem(f"invalid value '{shown(value, 40)}': {shown(str(e))}", line, path) from None


def _check_size(root: yaml.Node) -> None:
    """Refuse a node graph that aliases expand past MAX_YAML_VALUES values or MAX_YAML_DEPTH levels, or
    that contains itself; counted over the shared nodes (post-order, memoised), never expanded."""

    def children(node: yaml.Node) -> list[yaml.Node]:
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        if isinstance(node, yaml.MappingNode):
            return [n for pair in node.value for n in pair]
        return []

    size: dict[int, tuple[int, int]] = {}  # id -> (values, depth)
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key, line = id(node), node.start_mark.line + 1
        if done:
            open_.discard(key)
            below = [size[id(c)] for c in children(node)]
            values = 1 + sum(v for v, _ in below)
            depth = (1 + max(d for _, d in below)) if below else 0
            if values > MAX_YAML_VALUES:
                reason = f"expands to more than {MAX_YAML_VALUES:,} values through aliases (an alias bomb?)"
                raise YamlProblem(reason, line)
            if depth > MAX_YAML_DEPTH:
                raise YamlProblem(f"nested more than {MAX_YAML_DEPTH} levels deep", line)
            size[key] = (values, depth)
        elif key in open_:
            raise YamlProblem("an alias refers to the value it is part of (a recursive structure)", line)
        elif key not in size:
            open_.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in children(node))


_FLOW_TOKEN = re.compile(r""""(?:[^"\\\n]|\\.)*"|'[^'\n]*'|(?:^|(?<=\s))#[^\n]*|[\[\]{}\n]""", re.MULTILINE)


def _deep_flow_line(text: str) -> int | None:
    """The line where flow brackets (`[`, `{`) first nest deeper than MAX_YAML_DEPTH, quoted text and comments
    skipped; None when they never do. A fast, conservative guard (one regex pass), not a YAML parser."""
    if text.count("[") + text.count("{") <= MAX_YAML_DEPTH:
        return None
    depth, line = 0, 1
    for token in _FLOW_TOKEN.finditer(text):
        t = token.group()
        if t == "\n":
            line += 1
        elif t in ("[", "{"):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                return line
        elif t in ("]", "}"):
            depth = max(0, depth - 1)
        else:
            line += t.count("\n")
    return None


def _deep_block_line(text: str) -> int | None:
    """The line where indentation (with `- ` entries) first nests deeper than MAX_YAML_DEPTH, for the message
    when PyYAML's composer ran out of recursion."""
    columns: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        column = len(line) - len(stripped)
        starts = [column]
        while stripped.startswith("- "):  # `- - x`: each dash opens a level at its own column
            rest = stripped[2:].lstrip(" ")
            column += len(stripped) - len(rest)
            stripped = rest
            starts.append(column)
        while columns and columns[-1] >= starts[0]:
            columns.pop()
        columns += starts
        if len(columns) > MAX_YAML_DEPTH:
            return number
    return None


def yaml_error(e: yaml.YAMLError, text: str, source: str) -> ConfigError:
    """A YAML syntax error as one line at its line."""
    mark = getattr(e, "problem_mark", None)
    if isinstance(e, yaml.reader.ReaderError):  # a character YAML does not allow (NUL, a control character)
        line = text.count("\n", 0, e.position) + 1
        char = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
        return ConfigError(f"invalid YAML: character {char} is not allowed ({e.reason})", origin=f"{source}:{line}")
    where = f"{source}:{mark.line + 1}" if mark is not None else source
    problem = " ".join(str(getattr(e, "problem", None) or e).split())
    return ConfigError(f"invalid YAML: {shown(problem, 200)}", origin=where)


def read_config_text(path: Path, name: str) -> str:
    """A config file's text: a regular file of at most MAX_CONFIG_BYTES, in UTF-8 (a byte-order mark is fine)."""
    problem = file_problem(path, missing="no such config file")
    if problem is not None:
        raise ConfigError(problem, origin=name)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            reason = f"is {size:,} bytes; a config holds settings, at most {MAX_CONFIG_BYTES:,} bytes"
            raise ConfigError(reason, origin=name)
        data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    except OSError as e:
        raise ConfigError(f"cannot read the config: {e.strerror or e}", origin=name) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        offset = e.start - (data.rfind(b"\n", 0, e.start) + 1)
        reason = f"invalid UTF-8 (byte 0x{data[e.start]:02x} at offset {offset}); save the config as UTF-8"
        raise ConfigError(reason, origin=f"{name}:{line}") from None
