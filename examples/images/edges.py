"""edges: Sobel edge detection of one image ($images) into /pfs/out/<name>."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgm  # noqa: E402

pfs = os.environ.get("PFS", "/pfs")
src = os.environ["images"]
w, h, px = pgm.read(src)
out = [[0] * w for _ in range(h)]
for y in range(1, h - 1):
    for x in range(1, w - 1):
        gx = (px[y - 1][x + 1] + 2 * px[y][x + 1] + px[y + 1][x + 1]) - (px[y - 1][x - 1] + 2 * px[y][x - 1] + px[y + 1][x - 1])
        gy = (px[y + 1][x - 1] + 2 * px[y + 1][x] + px[y + 1][x + 1]) - (px[y - 1][x - 1] + 2 * px[y - 1][x] + px[y - 1][x + 1])
        out[y][x] = min(255, int((gx * gx + gy * gy) ** 0.5))
pgm.write(f"{pfs}/out/{os.path.basename(src)}", out)
