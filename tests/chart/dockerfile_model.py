"""A small Dockerfile reader for the tests: instructions grouped into stages, with line
continuations, comments, parser directives, ARG substitution in FROM and the JSON (exec)
form decoded. Enough to check the structure without a Docker engine; it is no builder.

Also a .dockerignore matcher with the rules Docker documents: patterns are relative to the
context root, `**` matches any number of directories, `!` re-includes, the last matching
pattern wins, and a pattern that matches a directory excludes what is inside it.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_DIRECTIVE = re.compile(r"^#\s*(syntax|escape|check)\s*=", re.IGNORECASE)
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass
class Instruction:
    keyword: str  # upper case
    text: str  # the arguments, continuation lines joined
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, else None."""
        if not self.text.startswith("["):
            return None
        value = json.loads(self.text)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), self.text
        return value

    def flags(self) -> tuple[dict[str, str], list[str]]:
        """`--flag=value` options and the other words (COPY, RUN --mount, ...)."""
        words = shlex.split(self.text)
        options = {}
        while words and words[0].startswith("--"):
            name, _, value = words.pop(0)[2:].partition("=")
            options[name] = value
        return options, words


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for word in shlex.split(instruction.text):
                key, sep, value = word.partition("=")
                assert sep, f"line {instruction.line}: use ENV key=value"
                values[key] = value
        return values


@dataclass
class Dockerfile:
    directives: dict[str, str]
    global_args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and pending):
            continue  # comments (and blank lines) inside a continuation are dropped
        if not stripped:
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        lines.append((start, " ".join(pending)))
        pending = []
    assert not pending, "the Dockerfile ends inside a line continuation"
    return lines


def parse(text: str) -> Dockerfile:
    directives: dict[str, str] = {}
    for raw in text.splitlines():
        if not _DIRECTIVE.match(raw):
            break
        key, _, value = raw.lstrip("#").partition("=")
        directives[key.strip().lower()] = value.strip()
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, line in _logical_lines(text):
        keyword, _, rest = line.partition(" ")
        instruction = Instruction(keyword.upper(), rest.strip(), number)
        if instruction.keyword == "FROM":
            words = instruction.text.split()
            options = [w for w in words if w.startswith("--")]
            words = [w for w in words if not w.startswith("--")]
            assert not options or all(o.startswith("--platform=") for o in options), line
            base = _VARIABLE.sub(lambda m: global_args.get(m.group(1) or m.group(2), ""), words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            assert len(words) in (1, 3), f"line {number}: FROM image [AS name]"
            stages.append(Stage(base=base, name=name))
        elif not stages:
            assert instruction.keyword == "ARG", f"line {number}: only ARG may precede FROM"
            key, _, value = instruction.text.partition("=")
            global_args[key.strip()] = value.strip()
        else:
            stages[-1].instructions.append(instruction)
    return Dockerfile(directives, global_args, stages)


def load(path: Path) -> Dockerfile:
    return parse(path.read_text(encoding="utf-8"))


@dataclass
class DockerIgnore:
    patterns: list[tuple[bool, str]]  # (exclude?, pattern)

    @classmethod
    def load(cls, path: Path) -> DockerIgnore:
        patterns = []
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclude = not line.startswith("!")
            pattern = line.lstrip("!").strip().strip("/")
            patterns.append((exclude, pattern))
        return cls(patterns)

    @staticmethod
    def _regex(pattern: str) -> str:
        out, i = [], 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
                continue
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            char = pattern[i]
            if char == "*":
                out.append("[^/]*")
            elif char == "?":
                out.append("[^/]")
            elif char == "[" and "]" in pattern[i:]:
                end = pattern.index("]", i)
                out.append(pattern[i:end + 1])
                i = end
            else:
                out.append(re.escape(char))
            i += 1
        return "".join(out) + r"\Z"

    def _matches(self, pattern: str, path: str) -> bool:
        regex = self._regex(pattern)
        parts = path.split("/")
        # A match on any leading directory excludes everything inside it.
        return any(re.match(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1))

    def excluded(self, path: str) -> bool:
        verdict = False
        for exclude, pattern in self.patterns:
            if self._matches(pattern, path):
                verdict = exclude
        return verdict
