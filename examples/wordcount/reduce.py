"""reduce: sum every document's counts into one table, most frequent first."""

import collections
import glob
import os

pfs = os.environ.get("PFS", "/pfs")
total: collections.Counter[str] = collections.Counter()
for path in glob.glob(f"{pfs}/map/*.tsv"):
    for line in open(path):
        word, n = line.rstrip("\n").split("\t")
        total[word] += int(n)
with open(f"{pfs}/out/counts.tsv", "w") as out:
    for word, n in sorted(total.items(), key=lambda kv: (-kv[1], kv[0])):
        out.write(f"{word}\t{n}\n")
