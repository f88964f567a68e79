"""montage: every original beside its edges, stacked into one image."""

import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgm  # noqa: E402

pfs = os.environ.get("PFS", "/pfs")
rows: list[list[int]] = []
for original in sorted(glob.glob(f"{pfs}/images/*.pgm")):
    edge = f"{pfs}/edges/{os.path.basename(original)}"
    if not os.path.exists(edge):
        continue
    _, _, a = pgm.read(original)
    _, _, b = pgm.read(edge)
    rows.extend(ra + [255] * 4 + rb for ra, rb in zip(a, b))
if rows:
    pgm.write(f"{pfs}/out/montage.pgm", rows)
