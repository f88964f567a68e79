"""Make small test images (PGM): shapes on a gradient, deterministic."""

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import pgm  # noqa: E402


def image(kind: int, size: int = 48) -> list[list[int]]:
    rows = []
    for y in range(size):
        row = []
        for x in range(size):
            v = (x + y) * 2
            if kind % 3 == 0 and (x - 24) ** 2 + (y - 24) ** 2 < 150:
                v = 230
            elif kind % 3 == 1 and 12 < x < 36 and 12 < y < 36:
                v = 20
            elif kind % 3 == 2 and abs(math.sin(x / 4)) > 0.8:
                v = 200
            row.append(v)
        rows.append(row)
    return rows


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for i in range(int(sys.argv[2]) if len(sys.argv) > 2 else 3):
        pgm.write(str(out / f"image{i}.pgm"), image(i))
