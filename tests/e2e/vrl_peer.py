"""Vector's VRL beside `check`, for the README, not a test: `make measure-vrl`.

Both read the same 2,000,000-record gzip S3 files as `make measure` (10 and 83,000 distinct
internal sources): VRL parses each line with `parse_aws_vpc_flow_log` and keeps the REJECTs from
inside 10.0.0.0/8 (`benches/vrl-peer`); `check --output json` does the same and groups what it
keeps into alerts. Wall-clock seconds of each whole process, best of three.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import s3_file, timed  # noqa: E402

PEER = Path(os.environ["VRL_PEER_BIN"])


def peer(path):
    start = time.monotonic()
    out = subprocess.run([str(PEER), str(path)], capture_output=True, text=True, check=True)
    lines, kept, _ = out.stdout.split()
    return time.monotonic() - start, int(lines), int(kept)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for sources in (10, 83_000):
            path = Path(tmp, f"sources-{sources}.log.gz")
            s3_file(path, 2_000_000, sources)
            check = min((timed(["check", "--output", "json", str(path)]) for _ in range(3)),
                        key=lambda r: r[0])
            vrl = min((peer(path) for _ in range(3)), key=lambda r: r[0])
            print(f"S3 file, 2,000,000 records, {sources} internal sources: "
                  f"check {check[0]:.2f} s ({len(check[2])} alerts), "
                  f"VRL {vrl[0]:.2f} s ({vrl[2]} of {vrl[1]} lines kept): "
                  f"check is {vrl[0] / check[0]:.1f}x faster")


if __name__ == "__main__":
    main()
