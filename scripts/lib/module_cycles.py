#!/usr/bin/env python3
"""No two modules import each other (issue 30, item 5): one crate's module graph, checked.

Usage: module_cycles.py CRATE_SRC_DIR [CRATE_SRC_DIR ...]   (e.g. src admin/src postgres/src)

Each `.rs` file under a crate's `src/` is one module (`lib.rs` is the root, `a.rs` with
`a/b.rs` is `a` with child `a::b`). An arrow runs from a file to every module whose items it
names through `crate::`, `super::` or `self::` paths, in `use` trees or in code. A name the
target re-exports with `pub use` is followed to the file that defines it, so a parent that
only re-exports its children is not drawn as their importer's target. `mod` declarations are
not arrows, and neither are comments, doc links, `#[cfg(test)]` items or test files
(`tests.rs`, `*_tests.rs`): tests belong to the module they test, and may reach anywhere.

It prints every group of files that reach each other (a strongly connected component of more
than one file) with the arrows inside it, and exits 1 if there is any.
"""

import re
import sys
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_comments_and_strings(text: str) -> str:
    """Removes `//` and `/* */` comments and the contents of string literals."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not re.match(r"\w", text[i - 1])):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            out.append('""')
            i = n if end < 0 else end + 1 + len(hashes)
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""')
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:]):
            m = re.match(r"'(\\.|[^\\'])'", text[i:])
            out.append("' '")
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip_test_items(code: str) -> str:
    """Removes `#[cfg(test)]` items (test modules and their imports): tests may reach anywhere."""
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]", code):
        if m.start() < i:
            continue
        out.append(code[i : m.start()])
        j = m.end()
        brace, semi = code.find("{", j), code.find(";", j)
        if semi >= 0 and (brace < 0 or semi < brace):
            i = semi + 1
            continue
        depth, k = 0, brace
        while k < len(code):
            if code[k] == "{":
                depth += 1
            elif code[k] == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        i = k + 1
    out.append(code[i:])
    return "".join(out)


def module_of(src: Path, path: Path) -> tuple:
    rel = path.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts in (["lib"], ["main"]):
        return ()
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


def expand_use_tree(tree: str) -> list:
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e] (aliases dropped)."""
    tree = re.sub(r"\s+", "", tree)

    def split_top(s):
        depth, cur, parts = 0, "", []
        for ch in s:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        if cur:
            parts.append(cur)
        return parts

    def walk(prefix, s):
        s = re.sub(r"as" + IDENT + "$", "", s) if False else s
        brace = s.find("{")
        if brace < 0:
            s = re.sub(r"\bas\b.*$", "", s)
            return [prefix + s]
        head = s[:brace]
        inner = s[brace + 1 : s.rfind("}")]
        result = []
        for part in split_top(inner):
            result.extend(walk(prefix + head, part))
        return result

    # `as` sticks to the name once whitespace is gone: `fooasbar` is ambiguous, so strip
    # aliases before removing whitespace.
    return walk("", tree)


def paths_in(code: str) -> list:
    paths = []
    for m in re.finditer(r"\buse\s+((?:crate|super|self)\b[^;]*);", code):
        tree = re.sub(r"\s+as\s+" + IDENT, "", m.group(1))
        paths.extend(expand_use_tree(tree))
    no_use = re.sub(r"\buse\s+[^;]*;", "", code)
    for m in re.finditer(r"\b((?:crate|super|self)(?:::" + IDENT + r")+)", no_use):
        paths.append(m.group(1))
    return paths


def resolve_relative(module: tuple, is_dir_module: bool, path: str) -> list:
    segs = path.split("::")
    base = list(module)
    out = []
    i = 0
    if segs[0] == "crate":
        base, i = [], 1
    else:
        while i < len(segs) and segs[i] in ("super", "self"):
            if segs[i] == "super":
                base = base[:-1]
            i += 1
    return base + segs[i:]


def main() -> int:
    any_cycle = False
    for src_arg in sys.argv[1:]:
        src = Path(src_arg)
        files = {}
        for path in sorted(src.rglob("*.rs")):
            name = path.name
            if name == "tests.rs" or name.endswith("_tests.rs"):
                continue
            files[module_of(src, path)] = path
        modules = set(files)
        codes = {m: strip_test_items(strip_comments_and_strings(p.read_text())) for m, p in files.items()}

        # Re-exports: module -> {name: target path segments}.
        reexports = {}
        for m, code in codes.items():
            table = {}
            for u in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]*);", code):
                raw = u.group(1)
                for full in expand_use_tree(re.sub(r"\s+as\s+" + IDENT, "", raw)):
                    segs = resolve_relative(m, True, full)
                    if full.split("::")[0] not in ("crate", "super", "self"):
                        segs = list(m) + full.split("::")
                    table[segs[-1]] = segs
                for alias in re.finditer(r"(" + IDENT + r"(?:::" + IDENT + r")*)\s+as\s+(" + IDENT + ")", raw):
                    pass
            reexports[m] = table

        def target(segs, depth=0):
            """The module file that defines what `segs` names."""
            segs = list(segs)
            best = ()
            for k in range(len(segs), -1, -1):
                if tuple(segs[:k]) in modules:
                    best = tuple(segs[:k])
                    rest = segs[k:]
                    break
            else:
                return None
            if rest and depth < 8:
                follow = reexports.get(best, {}).get(rest[0])
                if follow is not None and tuple(follow) != tuple(segs):
                    deeper = target(follow + rest[1:], depth + 1)
                    if deeper is not None:
                        return deeper
            return best

        edges = {m: set() for m in modules}
        for m, code in codes.items():
            for p in paths_in(code):
                t = target(resolve_relative(m, True, p))
                if t is not None and t != m:
                    edges[m].add(t)

        # Tarjan's strongly connected components.
        index, low, on, stack, comps = {}, {}, set(), [], []
        counter = [0]

        def strong(v):
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on.add(v)
            for w in edges[v]:
                if w not in index:
                    strong(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                comps.append(comp)

        sys.setrecursionlimit(10000)
        for v in sorted(modules):
            if v not in index:
                strong(v)
        cycles = [c for c in comps if len(c) > 1]
        name = lambda m: str(files[m].relative_to(src))
        print(f"{src}: {len(modules)} modules, {sum(len(e) for e in edges.values())} arrows, "
              f"{len(cycles)} groups that import each other")
        for comp in cycles:
            any_cycle = True
            members = set(comp)
            print("  " + " <-> ".join(sorted(name(m) for m in comp)))
            for m in sorted(comp):
                for t in sorted(edges[m] & members):
                    print(f"      {name(m)} -> {name(t)}")
    return 1 if any_cycle else 0


if __name__ == "__main__":
    sys.exit(main())
