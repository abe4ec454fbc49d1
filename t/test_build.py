"""The built artefact and the code rules of DEVELOPERS.md, checked on the
real files: exported symbol, system libraries, unsafe only in the glue with a
SAFETY line, a panic guard on every C entry point, an httpd-free engine."""

import glob
import os
import re
import subprocess

from conftest import TOP


def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def test_exports_md_module(module):
    syms = run("nm", "-D", "--defined-only", module)
    assert re.search(r"^[0-9a-f]+ [DB] md_module$", syms, re.M), syms


def _libs(path):
    out = {}
    for line in run("ldd", path).splitlines():
        m = re.match(r"\s*(\S+) => (\S+)", line)
        if m:
            out[m.group(1)] = os.path.realpath(m.group(2))
    return out


def test_links_system_openssl_and_curl(module):
    ours = _libs(module)
    mod_ssl = _libs("/usr/lib/apache2/modules/mod_ssl.so")
    # the very same libssl/libcrypto as mod_ssl
    assert ours["libssl.so.3"] == mod_ssl["libssl.so.3"]
    assert ours["libcrypto.so.3"] == mod_ssl["libcrypto.so.3"]
    assert ours["libcurl.so.4"].startswith("/usr/lib/x86_64-linux-gnu/libcurl.so.4")
    needed = run("readelf", "-d", module)
    for lib in ("libssl.so.3", "libcrypto.so.3", "libcurl.so.4"):
        assert f"[{lib}]" in needed, lib


def _rust_files(d):
    return sorted(glob.glob(os.path.join(TOP, d, "**", "*.rs"), recursive=True))


def test_engine_has_no_unsafe_and_no_httpd():
    for f in _rust_files("engine/src"):
        # code only: comments may name APR types they mirror, and log texts
        # quote the C module's words ("no https server_rec found")
        text = "\n".join(line.split("//")[0] for line in open(f).read().splitlines())
        text = re.sub(r'"(?:[^"\\\n]|\\.)*"', '""', text)
        assert not re.search(r"\bunsafe\b", text.replace("forbid(unsafe_code)", "")), f
        assert not re.search(r"\b(apr_|ap_hook|server_rec|request_rec)\w*", text), f
    assert "#![forbid(unsafe_code)]" in open(os.path.join(TOP, "engine/src/lib.rs")).read()
    cargo = open(os.path.join(TOP, "engine/Cargo.toml")).read()
    assert "bindgen" not in cargo


def test_engine_test_binary_needs_no_apr():
    bins = [b for b in glob.glob(os.path.join(TOP, "target", "*", "deps", "md_engine-*"))
            if os.access(b, os.X_OK) and not b.endswith((".d", ".rlib", ".rmeta"))]
    assert bins, "run cargo test first"
    for b in bins:
        undefined = run("nm", "-u", b)
        assert not re.search(r"\b(apr_|ap_)\w+", undefined), b


def test_every_unsafe_block_has_a_safety_line():
    bad = []
    for f in _rust_files("src"):
        lines = open(f).read().splitlines()
        for i, line in enumerate(lines):
            code = line.split("//")[0]
            if re.search(r"\bunsafe\s*(\{|impl\b)", code):
                window = "\n".join(lines[max(0, i - 6):i + 1])
                if "SAFETY:" not in window:
                    bad.append(f"{os.path.relpath(f, TOP)}:{i + 1}: {line.strip()}")
    assert not bad, "\n".join(bad)


def test_every_extern_c_entry_point_guards_panics():
    bad = []
    for f in _rust_files("src"):
        text = open(f).read()
        for m in re.finditer(r'extern "C" fn (\w+)[^{;]*\{', text):
            body = text[m.end():m.end() + 400]
            if "guard(" not in body:
                bad.append(f"{os.path.relpath(f, TOP)}: {m.group(1)}")
    assert not bad, bad


def test_release_keeps_unwinding():
    """catch_unwind only works when panics unwind."""
    cargo = open(os.path.join(TOP, "Cargo.toml")).read()
    assert 'panic = "abort"' not in cargo


def _imports(root):
    """Top-level module -> the crate modules it refers to (`crate::x`,
    `use crate::{x, ...}`), tests left out."""
    mods = {}
    for path in _rust_files(root):
        rel = os.path.relpath(path, root)[:-3]
        top = rel.split(os.sep)[0]
        if top in ("lib", "main", "bin"):
            continue
        text = re.split(r"#\[cfg\(test\)\]", open(path).read())[0]
        deps = set(re.findall(r"crate::(\w+)", text))
        for group in re.findall(r"use crate::\{([^}]*)\}", text):
            deps.update(x.strip().split("::")[0] for x in group.split(",") if x.strip())
        mods.setdefault(top, set()).update(deps - {top})
    return {m: deps & set(mods) for m, deps in mods.items()}


def _cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(m, path):
        state[m] = "open"
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                return path[path.index(d):] + [d]
            if d not in state:
                found = visit(d, path + [d])
                if found:
                    return found
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m, [m])
            if found:
                return found
    return None


def test_no_import_cycles():
    """Issue 12: the engine's modules and the glue's form no loop: each
    layer builds on the ones below it (ARCHITECTURE.md)."""
    for root in (os.path.join(TOP, "engine", "src"), os.path.join(TOP, "src")):
        graph = _imports(root)
        assert len(graph) > 10, graph
        cycle = _cycle(graph)
        assert cycle is None, f"{root}: import cycle {' -> '.join(cycle)}"


def test_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
