"""Makes data/moses/ from the MOSES benchmark's data as PyPI package `molsets` 0.3.1 ships it
(`moses/dataset/data/{train,test}.csv.gz`, MIT licence, Insilico Medicine):

    pip download molsets==0.3.1 --no-deps -d /tmp/molsets
    python3 data/moses/make_subset.py /tmp/molsets/molsets-0.3.1-py3-none-any.whl

- test.csv.gz: the whole MOSES test split (176,074 SMILES), as shipped.
- train.csv.gz: 250,000 of the 1,584,663 training SMILES, drawn without replacement by a seeded
  shuffle (numpy-free: Python's random.Random(0)), kept in their original order. A 2-core machine
  trains a few epochs of this in the 45 minutes issue 20 allows; the full split would be 10 MB in
  the repository for data a run never reaches. Novelty is then measured against this subset.
- LICENSE: the package's licence file.
Written with gzip mtime 0, so the files are byte-identical on every run.
"""
import gzip
import io
import random
import sys
import zipfile
from pathlib import Path

TRAIN_KEEP = 250_000
here = Path(__file__).parent
wheel = zipfile.ZipFile(sys.argv[1])


def rows(name):
    text = gzip.decompress(wheel.read(f"moses/dataset/data/{name}")).decode()
    lines = text.splitlines()
    assert lines[0] == "SMILES", lines[0]
    return lines[1:]


def write(name, smiles):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9) as f:
        f.write(("SMILES\n" + "\n".join(smiles) + "\n").encode())
    (here / name).write_bytes(buf.getvalue())


train = rows("train.csv.gz")
keep = sorted(random.Random(0).sample(range(len(train)), TRAIN_KEEP))
write("train.csv.gz", [train[i] for i in keep])
test = rows("test.csv.gz")
write("test.csv.gz", test)
(here / "LICENSE").write_bytes(wheel.read("molsets-0.3.1.dist-info/LICENSE"))
print(f"train: {TRAIN_KEEP} of {len(train)}; test: {len(test)}")
