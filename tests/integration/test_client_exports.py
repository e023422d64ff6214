# SPDX-License-Identifier: Apache-2.0
"""
libpigeon_client.so is what an app links (pigeon_client.h): it exports its
API and nothing else (its internal pgc_* modules, the generated protobuf
code and Paho stay inside), and it speaks only the wire contract, so it
links neither libpigeon (the broker's core) nor libmosquitto.
"""

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
