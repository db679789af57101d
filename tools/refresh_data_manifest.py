"""Maintainers: rewrite harness/data/manifest.json's file lists (path, bytes, sha256) from a
local copy of the data laid out as `paths.shared` (e.g. `python tools/refresh_data_manifest.py
../shared`). The datasets' sources, revisions and URLs are edited by hand in the manifest; this
only lists the files under each dataset's `dest` that match its `include` globs."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

MANIFEST = Path(__file__).resolve().parents[1] / "harness" / "data" / "manifest.json"


def main(shared: Path) -> None:
    manifest = json.loads(MANIFEST.read_text())
    for ds in manifest["datasets"]:
        root = shared / ds["dest"]
        found = sorted({p for g in ds["include"] for p in root.glob(g) if p.is_file()})
        if not found:
            sys.exit(f"{ds['name']}: no file under {root} matches {ds['include']}")
        upstream = {f["path"]: f.get("upstream") for f in ds.get("files", [])}
        ds["files"] = [{"path": p.relative_to(root).as_posix(), "bytes": p.stat().st_size,
                        "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                        **({"upstream": u} if (u := upstream.get(p.relative_to(root).as_posix())) else {})}
                       for p in found]
        print(f"{ds['name']}: {len(found)} files", file=sys.stderr)
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared"))
