#!/usr/bin/env python3
"""The layer check: no module includes or calls a module of a higher layer.

Usage: check-layers.py SRCDIR OBJDIR [--keys]
  SRCDIR  the source tree (reads layers.txt, layers-allow.txt, src/, include/)
  OBJDIR  the directory holding the built src/*.o (the build's src/)
  --keys  print the key of every upward reference found and exit 0
          (to write layers-allow.txt by hand from)

The layer of each module is written once, in SRCDIR/layers.txt. A module is
src/X.c and include/X.h. Two kinds of reference are checked:
  - includes: a line `#include "Y.h"` in src/X.c or include/X.h;
  - calls (and any other use of a symbol): the undefined symbols of X.o
    that another object Y.o defines, read with `nm -P`, so only what the
    linker really joins counts (macros and static inline functions are
    covered by the include they need). The line printed is the first use
    of the name in src/X.c.
A reference from a lower layer to a higher one fails the check unless its
key is listed in SRCDIR/layers-allow.txt; a listed key that no longer
occurs also fails it, so the list only shrinks. Every module in the tree
must have a layer and every module in layers.txt must exist.
Last, it prints the largest set of modules that reach each other through
includes (and through calls), which should lie within one layer."""
import os
import re
import subprocess
import sys

INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)\.h"')


def fail_usage(msg):
    sys.stderr.write("check-layers: %s\n" % msg)
    sys.exit(2)


def read_layers(path):
    """layers.txt: lines "N: mod mod ..."; '#' starts a comment."""
    layer = {}
    errors = []
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            head, _, rest = line.partition(":")
            if not head.strip().isdigit():
                errors.append("%s:%d: expected \"N: module ...\"" % (path, no))
                continue
            for mod in rest.split():
                if mod in layer:
                    errors.append("%s:%d: module %s listed twice" % (path, no, mod))
                layer[mod] = int(head)
    return layer, errors


def read_allow(path):
    allow = {}
    if not os.path.exists(path):
        return allow
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            line = line.strip()
            if line and not line.startswith("#"):
                allow[line] = no
    return allow


def strip_comments(text):
    """C comments and string literals blanked, newlines kept (line numbers hold)."""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    return re.sub(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"', blank, text, flags=re.S)


def module_files(srcdir):
    mods = {}
    for sub, ext in (("src", ".c"), ("include", ".h")):
        d = os.path.join(srcdir, sub)
        for name in sorted(os.listdir(d)):
            if name.endswith(ext):
                mods.setdefault(name[:-len(ext)], []).append(os.path.join(sub, name))
    return mods


def include_refs(srcdir, mods):
    """(from module, file, line, to module) for every #include of a module header."""
    refs = []
    for mod, files in mods.items():
        for rel in files:
            with open(os.path.join(srcdir, rel), encoding="utf-8", errors="replace") as f:
                for no, line in enumerate(f, 1):
                    m = INCLUDE_RE.match(line)
                    if not m:
                        continue
                    target = os.path.basename(m.group(1))
                    if target != mod and target in mods:
                        refs.append((mod, rel, no, target))
    return refs


def nm_symbols(path):
    out = subprocess.run(["nm", "-P", path], check=True, stdout=subprocess.PIPE,
                         universal_newlines=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        name, kind = parts[0], parts[1]
        if kind == "U":
            undefined.add(name)
        elif kind.isupper():
            defined.add(name)
    return defined, undefined


def call_refs(srcdir, objdir, mods):
    """(from module, file, line, to module, symbol) for every symbol one object takes from another."""
    objs = {}
    for mod, files in mods.items():
        if "src/%s.c" % mod not in files:
            continue
        obj = os.path.join(objdir, mod + ".o")
        if not os.path.exists(obj):
            fail_usage("%s is missing: build first" % obj)
        objs[mod] = nm_symbols(obj)
    owner = {}
    for mod, (defined, _) in objs.items():
        for sym in defined:
            owner[sym] = mod
    refs = []
    for mod, (_, undefined) in sorted(objs.items()):
        rel = "src/%s.c" % mod
        with open(os.path.join(srcdir, rel), encoding="utf-8", errors="replace") as f:
            lines = strip_comments(f.read()).split("\n")
        for sym in sorted(undefined):
            target = owner.get(sym)
            if target is None or target == mod:
                continue
            pat = re.compile(r"\b%s\b" % re.escape(sym))
            no = next((i for i, l in enumerate(lines, 1) if pat.search(l)), 0)
            refs.append((mod, rel, no, target, sym))
    return refs


def largest_scc(nodes, edges):
    """Tarjan's algorithm, iterative; returns the largest strongly connected set."""
    index, low, on, stack, best = {}, {}, set(), [], []
    counter = 0
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > len(best):
                    best = comp
    return sorted(best)


def describe_scc(name, nodes, edges, layer):
    big = largest_scc(nodes, edges)
    layers = sorted({layer.get(m, -1) for m in big})
    print("largest set of modules reaching each other by %s: %d of %d (layers %s): %s"
          % (name, len(big), len(nodes), ",".join(map(str, layers)), " ".join(big)))


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    keys_only = "--keys" in argv
    if len(args) != 2:
        fail_usage("usage: check-layers.py SRCDIR OBJDIR [--keys]")
    srcdir, objdir = args
    layers_path = os.path.join(srcdir, "layers.txt")
    allow_path = os.path.join(srcdir, "layers-allow.txt")
    layer, errors = read_layers(layers_path)
    mods = module_files(srcdir)
    for mod in sorted(mods):
        if mod not in layer:
            errors.append("%s: module %s (%s) has no layer" % (layers_path, mod, " ".join(mods[mod])))
    for mod in sorted(layer):
        if mod not in mods:
            errors.append("%s: module %s has no src/%s.c or include/%s.h" % (layers_path, mod, mod, mod))
    if errors:
        print("\n".join(errors))
        return 1

    found = {}   # key -> "file:line: message"
    inc_edges, call_edges = {}, {}
    for mod, rel, no, target in include_refs(srcdir, mods):
        inc_edges.setdefault(mod, set()).add(target)
        if layer[mod] < layer[target]:
            key = '%s -> %s: #include "%s.h"' % (rel, target, target)
            found[key] = "%s:%d: %s (layer %d) includes %s (layer %d)" % (
                rel, no, mod, layer[mod], target, layer[target])
    for mod, rel, no, target, sym in call_refs(srcdir, objdir, mods):
        call_edges.setdefault(mod, set()).add(target)
        if layer[mod] < layer[target]:
            key = "%s -> %s: %s" % (mod, target, sym)
            found[key] = "%s:%d: %s (layer %d) uses %s of %s (layer %d)" % (
                rel, no, mod, layer[mod], sym, target, layer[target])

    if keys_only:
        for key in sorted(found):
            print(key)
        return 0

    allow = read_allow(allow_path)
    bad = 0
    for key in sorted(found):
        if key not in allow:
            print("%s   [not in layers-allow.txt]" % found[key])
            bad += 1
    for key, no in sorted(allow.items(), key=lambda kv: kv[1]):
        if key not in found:
            print("%s:%d: listed upward reference no longer exists, delete the line: %s"
                  % (allow_path, no, key))
            bad += 1
    describe_scc("#include", list(mods), inc_edges, layer)
    describe_scc("calls", list(mods), call_edges, layer)
    print("layer check: %d modules, %d upward references (%d listed in layers-allow.txt), %d errors"
          % (len(mods), len(found), sum(1 for k in found if k in allow), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
