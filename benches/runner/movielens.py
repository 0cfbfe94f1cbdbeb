"""MovieLens-100k, read at run time from the recbole wheel on PyPI (MovieLens may not be
redistributed: nothing of it is committed). Writes the trainer's TSV files and returns the
parsed tables for loading into PostgreSQL."""
import glob
import os
import subprocess
import sys
import zipfile

RECBOLE = "recbole==1.2.1"
PREFIX = "recbole/dataset_example/ml-100k/ml-100k."


def fetch(cache_dir):
    """The wheel's path, downloading it once (pip download, no install)."""
    os.makedirs(cache_dir, exist_ok=True)
    found = glob.glob(os.path.join(cache_dir, "recbole-1.2.1-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", RECBOLE, "-d", cache_dir],
                       check=True)
        found = glob.glob(os.path.join(cache_dir, "recbole-1.2.1-*.whl"))
    return found[0]


def _rows(z, name):
    lines = z.read(PREFIX + name).decode("latin-1").splitlines()
    return [line.split("\t") for line in lines[1:] if line]


class MovieLens:
    """users: id → features (age/100, gender, occupation one-hot); items: id → (category =
    first genre, tags = all genres, features = (release year − 1900)/100 and an unknown-year
    flag); histories: user → items in time order."""

    def __init__(self, wheel):
        z = zipfile.ZipFile(wheel)
        users, items, inter = _rows(z, "user"), _rows(z, "item"), _rows(z, "inter")
        occupations = sorted({u[3] for u in users})
        genres = sorted({g for i in items for g in i[3].split()})
        self.user_features = {}
        for u in users:
            self.user_features[int(u[0])] = [int(u[1]) / 100.0, 1.0 if u[2] == "M" else 0.0] + \
                [1.0 if u[3] == o else 0.0 for o in occupations]
        self.items = {}
        for i in items:
            tags = [genres.index(g) + 1 for g in i[3].split()]
            year = i[2].strip()
            feats = [(int(year) - 1900) / 100.0, 0.0] if year.isdigit() else [0.0, 1.0]
            self.items[int(i[0])] = (tags[0] if tags else 0, tags, feats)
        events = sorted(((float(r[3]), n, int(r[0]), int(r[1])) for n, r in enumerate(inter)))
        self.histories = {}
        for _, _, u, i in events:
            self.histories.setdefault(u, []).append(i)
        self.genres = genres

    def write_tsv(self, out):
        """The trainer's input files (see crates/recall-train/src/data.rs)."""
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "users.tsv"), "w") as f:
            for u, feats in sorted(self.user_features.items()):
                f.write(f"{u}\t{','.join(map(str, feats))}\n")
        with open(os.path.join(out, "items.tsv"), "w") as f:
            for i, (cat, tags, feats) in sorted(self.items.items()):
                f.write(f"{i}\t{cat}\t{','.join(map(str, tags))}\t{','.join(map(str, feats))}\n")
        with open(os.path.join(out, "interactions.tsv"), "w") as f:
            # Time order is the file order; the trainer sorts by this stamp.
            for u, items in sorted(self.histories.items()):
                for t, i in enumerate(items):
                    f.write(f"{u}\t{i}\t{t}\n")

    def leave_last_out(self, history=20):
        """Per user with ≥ 2 interactions: (features, behaviour = last `history` training
        items, seen = all training items, held-out = the last item) — the trainer's split."""
        out = {}
        for u, items in self.histories.items():
            if len(items) < 2:
                continue
            train = items[:-1]
            out[u] = (self.user_features[u], train[-history:], sorted(set(train)), items[-1])
        return out
