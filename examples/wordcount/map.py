"""map: count the words of one document ($data, i.e. /pfs/data/<doc>) into /pfs/out/<doc>.tsv."""

import collections
import os
import re

pfs = os.environ.get("PFS", "/pfs")  # "/pfs" in the sandbox; the datum's directory with the local runtime
path = os.environ["data"]
words = re.findall(r"[a-z']+", open(path, encoding="utf-8", errors="replace").read().lower())
with open(f"{pfs}/out/{os.path.basename(path)}.tsv", "w") as out:
    for word, n in sorted(collections.Counter(words).items()):
        out.write(f"{word}\t{n}\n")
