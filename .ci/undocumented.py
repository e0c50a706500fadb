"""Lists the public symbols declared in Loom's sources that have no doc comment, from the symbol graphs that
`swift package generate-documentation` extracts (run it first); exits 1 if there is any. Symbols the compiler
synthesizes or inherits (`!=`, `hashValue`, protocol extension members of the standard library) have no source
location of ours and are not counted."""
import glob
import json
import sys

missing = set()
graphs = glob.glob(".build/*/extracted-symbols/*/*/*.symbols.json")
if not graphs:
    sys.exit("no symbol graphs under .build: run swift package generate-documentation first")
for path in graphs:
    for symbol in json.load(open(path))["symbols"]:
        uri = symbol.get("location", {}).get("uri", "")
        if "/Sources/" not in uri or symbol.get("docComment"):
            continue
        line = symbol["location"]["position"]["line"] + 1
        missing.add(f"Sources/{uri.split('/Sources/')[1]}:{line}: {'.'.join(symbol['pathComponents'])}")
for entry in sorted(missing):
    print(f"{entry}: public, but undocumented")
print(f"{len(missing)} undocumented public symbols in {len(graphs)} modules", file=sys.stderr)
sys.exit(1 if missing else 0)
