#!/usr/bin/env python3
"""Structure limits for src/, checked by scripts/test.sh.

- no file over 800 lines;
- no function over 150 lines (from its `fn` line to its closing brace);
- no import cycle between the files of src/store/ (and the other layered directories named
  in ACYCLIC): a file may use a sibling, or items mod.rs re-exports from a sibling, but the
  siblings' "uses" graph must have no cycle. mod.rs is the facade: its `mod` and `pub use`
  lines are not edges, what its own code calls is.

- the layers between the crate's top-level modules (LAYERS below, the "may use" table of
  docs/architecture.md): a module names only the modules its row allows (`crate::x` paths,
  comments and strings aside).

A file whose `//!` header contains the line `structure: generated table` is exempt from the
length limits (the header must say why). Test modules count like any other code.

Usage: scripts/check-structure.py [--list]   (--list prints the ten longest functions)
"""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "src")
MAX_FILE_LINES = 800
MAX_FN_LINES = 150
ACYCLIC = ["store", "replicate", "harvest/runtime", "auth"]
EXEMPT_MARK = "structure: generated table"
LEAVES = {"error", "config", "tenant", "cpu", "telemetry"}
# module -> the crate modules it may use (besides itself). Keep in step with
# docs/architecture.md ("May use").
LAYERS = {
    "error": set(),
    "config": {"error"},
    "tenant": {"error", "config"},
    "cpu": {"error", "config"},
    "telemetry": {"error", "config"},
    "demo": set(),
    "store": {"error", "config", "tenant", "telemetry"},
    "harvest": LEAVES | {"store"},
    "replicate": LEAVES | {"store"},
    "auth": LEAVES | {"store"},
    "http": LEAVES | {"store", "auth", "harvest", "replicate"},
    "app": LEAVES | {"store", "auth", "harvest", "replicate", "http", "demo"},
    "commands": LEAVES | {"store", "auth", "harvest", "replicate", "http", "demo", "app"},
}


def strip_code(text):
    """Returns text with comments, strings and char literals blanked (newlines kept), so
    braces and paths can be scanned without a Rust parser."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif re.match(r'b?r(#*)"', text[i:i + 260]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'b?r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'":
            m = re.match(r"'(\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'])'", text[i:i + 12])
            if m:
                out.append(" " * m.end())
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


FN_RE = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?((const|async|unsafe|extern\s+\"C\")\s+)*fn\s+(\w+)", re.M)


def functions(code):
    """Yields (name, first_line, last_line) for every fn with a body."""
    for m in FN_RE.finditer(code):
        start = m.start()
        depth, j = 0, m.end()
        # The body starts at the first `{` not inside the signature's generics/args; a `;`
        # first means a declaration without a body (trait items).
        paren = 0
        while j < len(code):
            ch = code[j]
            if ch in "([":
                paren += 1
            elif ch in ")]":
                paren -= 1
            elif ch == ";" and paren == 0:
                j = -1
                break
            elif ch == "{" and paren == 0:
                break
            j += 1
        if j < 0 or j >= len(code):
            continue
        k = j
        while k < len(code):
            if code[k] == "{":
                depth += 1
            elif code[k] == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        first = code.count("\n", 0, start) + 1
        last = code.count("\n", 0, k) + 1
        yield m.group(5), first, last


def exempt(text):
    header = []
    for line in text.splitlines():
        if not line.startswith("//!"):
            break
        header.append(line)
    return any(EXEMPT_MARK in h for h in header)


def rust_files():
    for d, _, files in os.walk(SRC):
        for f in sorted(files):
            if f.endswith(".rs"):
                yield os.path.join(d, f)


def sibling_graph(directory):
    """Edges between the files of one directory (module names), from `super::x` and
    `crate::<dir>::x` paths, resolving names mod.rs re-exports to the file they come from."""
    path = os.path.join(SRC, directory)
    mods = {f[:-3] for f in os.listdir(path) if f.endswith(".rs") and f != "mod.rs"}
    mods |= {f for f in os.listdir(path) if os.path.isfile(os.path.join(path, f, "mod.rs"))}
    mod_rs = os.path.join(path, "mod.rs")
    if not os.path.exists(mod_rs):
        return {}
    facade = strip_code(open(mod_rs).read())
    reexport = {}
    defined_in_mod = set()
    for m in re.finditer(r"pub(\([^)]*\))?\s+use\s+(\w+)::(\{[^}]*\}|[\w:]+(\s+as\s+\w+)?)\s*;", facade, re.S):
        src, items = m.group(2), m.group(3)
        for item in re.split(r"[,{}]", items):
            item = item.strip()
            if not item:
                continue
            alias = item.split(" as ")[-1].strip().split("::")[-1]
            reexport[alias] = src
    for m in re.finditer(r"^\s*(pub(\([^)]*\))?\s+)?(const|static|fn|struct|enum|type|trait)\s+(\w+)", facade, re.M):
        defined_in_mod.add(m.group(4))
    crate_prefix = "crate::" + directory.replace("/", "::") + "::"

    def targets(code, own):
        found = set()
        # Paths: super::x..., crate::dir::x..., and grouped `use super::{a, b::c}`.
        for m in re.finditer(r"(?<![\w:])(super|" + re.escape(crate_prefix[:-2]) + r")::(\{[^}]*\}|\w+)", code):
            head = m.group(2)
            names = [h.strip().split("::")[0] for h in head.strip("{}").split(",")] if head.startswith("{") else [head]
            for name in names:
                if not name or name == "super" or name == "self":
                    continue
                if name in mods:
                    found.add(name)
                elif name in reexport:
                    found.add(reexport[name])
                elif name in defined_in_mod:
                    found.add("mod")
        found.discard(own)
        return found

    graph = {}
    for name in mods:
        f = os.path.join(path, name + ".rs")
        if not os.path.exists(f):
            f = os.path.join(path, name, "mod.rs")
        code = strip_code(open(f).read())
        # `super::` inside a nested `mod tests` of this file means this file itself.
        code = re.sub(r"super::super::", "super::", code)
        graph[name] = targets(code, name)
    # mod.rs's own code (not its `mod` / `pub use` lines) may use siblings.
    body = re.sub(r"pub(\([^)]*\))?\s+use\s+[^;]*;", "", facade)
    body = re.sub(r"(pub(\([^)]*\))?\s+)?mod\s+\w+\s*;", "", body)
    used = set()
    for name in mods:
        if re.search(r"(?<![\w:])" + re.escape(name) + r"::", body):
            used.add(name)
    graph["mod"] = used
    return graph


def cycles(graph):
    found, state, stack = [], {}, []

    def visit(v):
        state[v] = 1
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                found.append(stack[stack.index(w):] + [w])
            elif not state.get(w):
                visit(w)
        stack.pop()
        state[v] = 2

    for v in sorted(graph):
        if not state.get(v):
            visit(v)
    return found


def main():
    problems, all_fns = [], []
    for f in rust_files():
        text = open(f).read()
        rel = os.path.relpath(f, ROOT)
        if exempt(text):
            continue
        lines = text.count("\n")
        if lines > MAX_FILE_LINES:
            problems.append(f"{rel}: {lines} lines (limit {MAX_FILE_LINES})")
        for name, first, last in functions(strip_code(text)):
            length = last - first + 1
            all_fns.append((length, f"{rel}:{first} {name}"))
            if length > MAX_FN_LINES:
                problems.append(f"{rel}:{first}: fn {name} is {length} lines (limit {MAX_FN_LINES})")
    for d in ACYCLIC:
        for c in cycles(sibling_graph(d)):
            problems.append(f"src/{d}: import cycle " + " -> ".join(c))
    for f in rust_files():
        rel = os.path.relpath(f, SRC)
        top = rel.split(os.sep)[0].removesuffix(".rs")
        if top in ("lib", "main"):
            continue
        allowed = LAYERS.get(top)
        if allowed is None:
            problems.append(f"src/{rel}: module {top} has no row in LAYERS (scripts/check-structure.py)")
            continue
        code = strip_code(open(f).read())
        for used in sorted(set(re.findall(r"(?<![\w:])crate::([a-z_]+)", code))):
            if used != top and used not in allowed:
                problems.append(f"src/{rel}: {top} may not use crate::{used} (allowed: {', '.join(sorted(allowed)) or 'nothing'})")
    if "--list" in sys.argv:
        for length, where in sorted(all_fns, reverse=True)[:10]:
            print(f"{length:5} {where}")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"check-structure: {len(problems)} problem(s); split the file or function at a natural seam", file=sys.stderr)
        return 1
    print("check-structure: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
