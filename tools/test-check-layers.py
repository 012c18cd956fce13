#!/usr/bin/env python3
"""Tests of tools/check-layers.py on a small made-up tree (run by make check).

Three modules: low (layer 0), mid (1), high (2). mid includes high's
header and calls high_fn: two upward references. Checks that the script
fails on each when not allowed (naming file:line and both modules), passes
when both are listed, fails on a listed reference that is gone, and fails
on a module without a layer. Prints "N passed, N failed"."""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, "check-layers.py")

FILES = {
    "include/low.h": "int low_fn(void);\n",
    "include/mid.h": "int mid_fn(void);\n",
    "include/high.h": "int high_fn(void);\n",
    "src/low.c": '#include "low.h"\nint low_fn(void) { return 1; }\n',
    "src/mid.c": '#include "mid.h"\n#include "low.h"\n#include "high.h"\n\n'
                 '/* high_fn in a comment does not count */\n'
                 'int mid_fn(void) { return low_fn() + high_fn(); }\n',
    "src/high.c": '#include "high.h"\n#include "mid.h"\nint high_fn(void) { return mid_fn(); }\n',
}
LAYERS = "# test\n2: high\n1: mid\n0: low\n"
ALLOW_BOTH = '# header\nmid -> high: high_fn\nsrc/mid.c -> high: #include "high.h"\n'

passed = failed = 0


def check(name, cond, out):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: %s\n%s" % (name, out))


def run(root):
    p = subprocess.run([sys.executable, CHECK, root, os.path.join(root, "obj")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    return p.returncode, p.stdout


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def main():
    with tempfile.TemporaryDirectory() as root:
        for rel, text in FILES.items():
            write(root, rel, text)
        os.makedirs(os.path.join(root, "obj"))
        for mod in ("low", "mid", "high"):
            subprocess.run([os.environ.get("CC", "cc"), "-c", "-I", os.path.join(root, "include"), "-o",
                            os.path.join(root, "obj", mod + ".o"), os.path.join(root, "src", mod + ".c")],
                           check=True)
        write(root, "layers.txt", LAYERS)

        rc, out = run(root)
        check("fails without an allowlist", rc == 1, out)
        check("names the call with file:line and both modules",
              "src/mid.c:6: mid (layer 1) uses high_fn of high (layer 2)" in out, out)
        check("names the include", "src/mid.c:3: mid (layer 1) includes high (layer 2)" in out, out)
        check("a call downward is fine", "low_fn" not in out and "high (layer 2) uses" not in out, out)
        check("prints the largest cycle", "2 of 3" in out and "high mid" in out, out)

        write(root, "layers-allow.txt", ALLOW_BOTH)
        rc, out = run(root)
        check("passes with both listed", rc == 0, out)

        write(root, "layers-allow.txt", ALLOW_BOTH + "mid -> high: gone_fn\n")
        rc, out = run(root)
        check("fails on a listed reference that is gone",
              rc == 1 and "layers-allow.txt:4: listed upward reference no longer exists" in out, out)

        write(root, "layers-allow.txt", ALLOW_BOTH)
        write(root, "layers.txt", "2: high\n1: mid\n")
        rc, out = run(root)
        check("fails on a module without a layer", rc == 1 and "module low" in out, out)

        write(root, "layers.txt", LAYERS + "0: ghost\n")
        rc, out = run(root)
        check("fails on a layer for a module that does not exist", rc == 1 and "ghost" in out, out)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
