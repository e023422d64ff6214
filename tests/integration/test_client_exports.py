# SPDX-License-Identifier: Apache-2.0
"""
libpigeon_client.so is what an app links (pigeon_client.h): it exports its
API and nothing else (its internal pgc_* modules, the generated protobuf
code and Paho stay inside), and it speaks only the wire contract, so it
links neither libpigeon (the broker's core) nor libmosquitto.
"""

import os
import re
import subprocess

import harness

LIB = "libpigeon_client.so"


def test_libpigeon_client_exports_only_the_pigeon_api():
    out = subprocess.run(["nm", "-D", "--defined-only", str(harness.build_path("lib", LIB))],
                         capture_output=True, text=True, check=True).stdout
    names = {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}
    # (__odr_asan.* are AddressSanitizer's markers of exported globals.)
    internal = {s for s in names if not s.startswith(("pigeon_", "__odr_asan"))}
    assert internal == set(), f"{LIB} exports {sorted(internal)}"
    # The API of pigeon_client.h is all there.
    header = (harness.REPO / "clients" / "lib" / "pigeon_client.h").read_text()
    api = set(re.findall(r"PIGEON_CLIENT_API [^;(]*?\b(pigeon_\w+)\(", header))
    assert api and api <= names, f"missing {sorted(api - names)}"


def test_libpigeon_client_links_neither_libpigeon_nor_libmosquitto():
    out = subprocess.run(["readelf", "-d", str(harness.build_path("lib", LIB))],
                         capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
    assert any(n.startswith("libpaho-mqtt3as") for n in needed), needed
    assert not [n for n in needed if n.startswith(("libpigeon", "libmosquitto"))], needed


def test_the_api_example_of_docs_client_md_compiles_and_links(tmp_path):
    # The C example of "## The API", as printed, against the installed-style
    # header and the library: an app developer can start from it.
    doc = (harness.REPO / "docs" / "client.md").read_text()
    section = doc.split("## The API", 1)[1]
    m = re.search(r"```c\n(.*?)```", section, re.S)
    assert m, "docs/client.md ## The API has no C example"
    src = tmp_path / "example.c"
    src.write_text(m.group(1) + "\nint main(int argc, char **argv)\n"
                   "{\n\treturn argc > 1 ? run(argv[1]) : 0;\n}\n")
    lib = harness.build_path("lib", LIB)
    cmd = ["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter",
           "-I", str(harness.REPO / "clients" / "lib"), str(src), "-o", str(tmp_path / "example"),
           "-L", str(lib.parent), "-lpigeon_client", "-Wl,-rpath," + str(lib.parent)]
    if harness.SANITIZE:
        cmd.insert(1, "-fsanitize=address,undefined")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    # It runs: without a token argument it returns at once.
    r = subprocess.run([str(tmp_path / "example")], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_an_installed_libpigeon_client_builds_an_app_through_pkg_config(tmp_path):
    # cmake --install into a scratch prefix, then an app built the way one
    # outside this tree would: pkg-config for the flags, nothing else.
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", str(harness.BUILD_DIR), "--prefix", str(prefix)],
                   check=True, capture_output=True, timeout=120)
    pcdirs = list(prefix.glob("lib*/pkgconfig")) + list(prefix.glob("lib/*/pkgconfig"))
    assert pcdirs and (pcdirs[0] / "pigeon_client.pc").is_file(), list(prefix.rglob("*.pc"))
    assert (prefix / "include" / "pigeon_client.h").is_file()
    env = dict(os.environ, PKG_CONFIG_PATH=str(pcdirs[0]))
    flags = subprocess.run(["pkg-config", "--define-prefix", "--cflags", "--libs",
                            "pigeon_client"], capture_output=True, text=True, env=env,
                           check=True).stdout.split()
    src = tmp_path / "app.c"
    src.write_text("#include <pigeon_client.h>\n#include <stdio.h>\n"
                   "int main(void)\n{\n\tputs(pigeon_strerror(PIGEON_EAUTH));\n\treturn 0;\n}\n")
    cmd = ["cc", "-std=c11", "-Wall", "-Werror", str(src), "-o", str(tmp_path / "app")] + flags
    if harness.SANITIZE:
        cmd.insert(1, "-fsanitize=address,undefined")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    libdir = [f[2:] for f in flags if f.startswith("-L")]
    r = subprocess.run([str(tmp_path / "app")], capture_output=True, text=True, timeout=30,
                       env=dict(env, LD_LIBRARY_PATH=":".join(libdir)))
    assert r.returncode == 0 and r.stdout.strip(), (r.stdout, r.stderr)
