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
    for f in _rust_files("engine/src") + _rust_files("a2md/src"):
        # code only: comments may name APR types they mirror, and log texts
        # quote the C module's words ("no https server_rec found")
        text = "\n".join(line.split("//")[0] for line in open(f).read().splitlines())
        text = re.sub(r'"(?:[^"\\\n]|\\.)*"', '""', text)
        assert not re.search(r"\bunsafe\b", text.replace("forbid(unsafe_code)", "")), f
        assert not re.search(r"\b(apr_|ap_hook|server_rec|request_rec)\w*", text), f
    assert "#![forbid(unsafe_code)]" in open(os.path.join(TOP, "engine/src/lib.rs")).read()
    assert "#![forbid(unsafe_code)]" in open(os.path.join(TOP, "a2md/src/main.rs")).read()
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


def strip_test_modules(text):
    """Product code: every `#[cfg(test)] mod x { ... }` block removed,
    wherever it sits. Also says whether product code follows a test
    module (a reader stops at the tests; so does a naive check)."""
    out, i, seen_test = [], 0, False
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i, seen_test = j, True
    rest = text[i:]
    code_after = seen_test and bool(re.sub(r"//[^\n]*", "", rest).strip())
    out.append(rest)
    return "".join(out), code_after


def _modules(root):
    """Module path (`lifecycle::renew`, `config` for config/mod.rs) -> file."""
    mods = {}
    for path in _rust_files(os.path.relpath(root, TOP)):
        rel = os.path.relpath(path, root)[:-3].split(os.sep)
        if rel[0] == "bin":
            continue
        if rel[-1] == "mod":
            rel = rel[:-1]
        mods["::".join(rel) if rel not in (["lib"], ["main"]) else ""] = path
    return mods


def _deps(name, path, mods):
    """The modules of the crate that `name`'s product code refers to
    (`crate::a::b`, `super::x`, grouped `use` lists), resolved to the
    longest module path that exists."""
    text, _ = strip_test_modules(open(path).read())
    text = re.sub(r"//[^\n]*", "", text)
    here = name.split("::") if name else []
    parent = here if path.endswith("mod.rs") else here[:-1]
    refs = set()

    def add(parts):
        for k in range(len(parts), 0, -1):
            if "::".join(parts[:k]) in mods:
                refs.add("::".join(parts[:k]))
                return

    def expand(prefix, body):
        for item in re.split(r",(?![^{]*\})", body):
            item = item.strip()
            m = re.match(r"([\w:]+)::\{(.*)\}$", item, re.S)
            if m:
                expand(prefix + m.group(1).split("::"), m.group(2))
            elif item:
                add(prefix + [x for x in item.split(" as ")[0].split("::") if x and x != "self"])

    def base(kw):
        return {"crate": [], "super": parent[:-1] if path.endswith("mod.rs") else parent,
                "self": here}[kw]
    for m in re.finditer(r"\b(crate|super|self)::((?:\w+::)*)\{([^;]*?)\};", text, re.S):
        expand(base(m.group(1)) + [x for x in m.group(2).split("::") if x], m.group(3))
    for m in re.finditer(r"\b(crate|super)::(\w+(?:::\w+)*)", text):
        add(base(m.group(1)) + m.group(2).split("::"))
    # `use super::*` in a folder's file: the folder's own face
    refs.discard(name)
    return refs


def _graph(root):
    mods = _modules(root)
    return {n: _deps(n, p, mods) for n, p in mods.items()}, mods


def _cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(m, path):
        state[m] = "open"
        for d in sorted(graph.get(m, ())):
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


def _folder_order():
    """The engine's folders bottom to top, from ARCHITECTURE.md's layer
    table (`| n | `folder/` | modules | what |`)."""
    text = open(os.path.join(TOP, "ARCHITECTURE.md")).read()
    rows = re.findall(r"^\| (\d+) \| `(\w+)/` \| ([^|]*)\|", text, re.M)
    return [(int(n), f, re.findall(r"`(\w+)`", mods)) for n, f, mods in rows]


def test_no_import_cycles():
    """Issues 12 and 26: no file of either crate imports one that imports it
    back, directly or round a loop; test modules are left out wherever they
    sit, and product code after a test module is refused (a check that stops
    at the first `#[cfg(test)]` missed the job/reg loop)."""
    for root in (os.path.join(TOP, "engine", "src"), os.path.join(TOP, "src")):
        graph, mods = _graph(root)
        assert len(graph) > 10, graph
        cycle = _cycle(graph)
        assert cycle is None, f"{root}: import cycle {' -> '.join(cycle)}"
        after = [p for p in mods.values() if strip_test_modules(open(p).read())[1]]
        assert after == [], f"product code after a test module: {after}"


def test_no_folder_imports_one_above_it():
    """Issue 26: the engine's folders are layers (ARCHITECTURE.md's table,
    bottom to top); a file imports only from its own folder and those below."""
    order = [f for _, f, _ in sorted(_folder_order())]
    assert order[:2] == ["base", "config"] and order[-1] == "generation", order
    graph, _ = _graph(os.path.join(TOP, "engine", "src"))
    up = []
    for name, deps in graph.items():
        f = name.split("::")[0]
        for d in deps:
            g = d.split("::")[0]
            if f in order and g in order and order.index(g) > order.index(f):
                up.append(f"{name} -> {d}")
    assert up == [], "imports of a folder above: " + ", ".join(sorted(up))


def test_architecture_lists_every_module():
    """ARCHITECTURE.md's layer table names every folder of the engine and
    every module in it, and nothing that is not there."""
    rows = _folder_order()
    _, mods = _graph(os.path.join(TOP, "engine", "src"))
    folders = {n.split("::")[0] for n in mods if "::" in n}
    assert {f for _, f, _ in rows} == folders, (sorted(f for _, f, _ in rows), sorted(folders))
    for _, f, listed in rows:
        there = {n.split("::")[1] for n in mods if n.startswith(f + "::") and n.count("::") == 1}
        assert set(listed) == there, f"{f}/: the table lists {sorted(listed)}, the folder holds {sorted(there)}"


def test_engine_layout_limits():
    """Issue 26: at most 12 files directly in engine/src, and no engine file
    with more than 700 lines of product code (test modules left out)."""
    top = glob.glob(os.path.join(TOP, "engine", "src", "*.rs"))
    assert len(top) <= 12, top
    big = []
    for path in _rust_files("engine/src"):
        n = strip_test_modules(open(path).read())[0].count("\n")
        if n > 700:
            big.append(f"{os.path.relpath(path, TOP)} ({n})")
    assert big == [], big


# What reaches the file system directly. Outside `engine/src/store/` the
# engine goes through `Store` (the storage seam, issue 26): files the admin
# names are the only exceptions, line by line.
_FS = re.compile(r"\bfs::|\bFile::|OpenOptions|\.local_path\(|write_atomic|create_exclusive|"
                 r"remove_stale_tmp|FileStamp|read_dir|\.join\(\s*\"(domains|staging|accounts)")
_FS_ALLOWED = {
    # the atomic-write helpers the file store is built on
    "engine/src/base/util.rs": None,
    "engine/src/testutil.rs": None,
    # MDExternalAccountBinding names a JSON file
    "engine/src/config/apply.rs": ["std::fs::read_to_string(path)"],
    # a2md reads the key file and /etc/passwd it is given, writes an export
    "a2md/src/ops.rs": ["std::fs::read(file)", "use std::os::unix::fs::OpenOptionsExt;",
                        "std::fs::OpenOptions::new()"],
    # and /etc/passwd, the server's configuration (MDStoreDir), and whether
    # it may read the store at all
    "a2md/src/main.rs": ["std::fs::read_to_string(\"/etc/passwd\")", "std::fs::read_dir(conf.join(dir))",
                         "std::fs::read_to_string(&f)", "std::fs::File::open(&file)"],
}


def store_layout_touches(rel, code):
    """Lines of product code in `rel` that reach the file system around
    the storage seam."""
    if rel.startswith("engine/src/store/"):
        return []
    allowed = _FS_ALLOWED.get(rel, [])
    if allowed is None:
        return []
    return [f"{rel}: {line.strip()}" for line in code.splitlines()
            if _FS.search(line) and not any(a in line for a in allowed)]


def test_only_the_store_touches_the_store_layout():
    """Issue 26: the storage seam. Outside engine/src/store/ nothing reads,
    writes, lists or stats the store's files but through `Store`."""
    bad = []
    for path in _rust_files("engine/src") + _rust_files("a2md/src"):
        rel = os.path.relpath(path, TOP)
        bad += store_layout_touches(rel, strip_test_modules(open(path).read())[0])
    assert bad == [], "\n".join(bad)
    # the check sees what it is for
    assert store_layout_touches("engine/src/serving/x.rs", "let d = std::fs::read(p);")
    assert store_layout_touches("engine/src/x.rs", "store.local_path(Group::Domains, n, f)")
    assert not store_layout_touches("engine/src/store/x.rs", "std::fs::read(p)")


def test_stripping_finds_code_after_tests():
    text = "fn a() {}\n#[cfg(test)]\nmod tests {\n fn t() { {} }\n}\nfn b() {}\n"
    code, after = strip_test_modules(text)
    assert "fn t" not in code and "fn a" in code and "fn b" in code and after
    assert not strip_test_modules("fn a() {}\n#[cfg(test)]\nmod tests {\n}\n// end\n")[1]


def test_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_test_files_share_helpers_not_each_other():
    """Issue 26: what the end-to-end tests share lives in helper modules
    (helpers.py, cluster.py, conftest.py); no test file imports another."""
    bad = []
    for path in glob.glob(os.path.join(TOP, "t", "*.py")):
        for line in open(path):
            if re.match(r"^\s*(from|import)\s+test_\w+", line):
                bad.append(f"{os.path.basename(path)}: {line.strip()}")
    assert bad == [], bad


def test_every_fixture_a_test_asks_for_is_defined():
    """A fixture lives in conftest.py or in the test file that uses it: a
    helper module's fixture, imported and then dropped as "unused" by a
    linter, turns the tests that ask for it into errors."""
    import ast
    conf = ast.parse(open(os.path.join(TOP, "t", "conftest.py")).read())

    def fixtures(tree):
        return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)
                and any("fixture" in ast.dump(d) for d in n.decorator_list)}
    shared = fixtures(conf) | {"request", "tmp_path", "monkeypatch", "capsys"}
    missing = []
    for path in glob.glob(os.path.join(TOP, "t", "test_*.py")):
        text = open(path).read()
        tree = ast.parse(text)
        known = shared | fixtures(tree)
        known |= {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
        known |= {x.strip() for m in re.finditer(r"parametrize\(\s*[\"']([^\"']+)[\"']", text)
                  for x in m.group(1).split(",")}
        for n in tree.body:
            if isinstance(n, ast.FunctionDef) and (n.name.startswith("test_") or n.name in fixtures(tree)):
                missing += [f"{os.path.basename(path)}::{n.name}({a.arg})"
                            for a in n.args.args if a.arg not in known]
    assert missing == [], missing
