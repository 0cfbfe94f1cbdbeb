"""Exact ground truth and recall, with ties at the k-th distance counted as hits."""
import numpy as np


def distances(base, q, metric):
    if metric == "l2":
        # ||x||² - 2x·q + ||q||², in float64 to keep ties stable.
        return (np.einsum("ij,ij->i", base, base, dtype=np.float64)
                - 2.0 * (base @ q).astype(np.float64) + float(q @ q))
    if metric == "ip":
        return -(base @ q).astype(np.float64)
    if metric == "cosine":
        n = np.linalg.norm(base, axis=1) * np.linalg.norm(q)
        return 1.0 - (base @ q).astype(np.float64) / np.where(n == 0, 1, n)
    raise ValueError(metric)


class GroundTruth:
    """For each query: the exact top-k ids and the k-th distance."""

    def __init__(self, base, ids, queries, k, metric):
        self.k = k
        self.metric = metric
        self.base = base
        self.ids = ids
        self.id_to_row = {int(i): r for r, i in enumerate(ids)}
        self.queries = queries
        self.top = []
        self.kth = []
        for q in queries:
            d = distances(base, q, metric)
            part = np.argpartition(d, k - 1)[:k]
            order = part[np.argsort(d[part], kind="stable")]
            self.top.append(ids[order])
            self.kth.append(d[order[-1]])

    def recall(self, qi, returned):
        """|returned ∩ true top-k| / k, where a returned id whose distance equals the k-th
        true distance (within float tolerance) is a hit too."""
        if len(returned) == 0:
            return 0.0
        q = self.queries[qi]
        rows = [self.id_to_row[int(r)] for r in returned[: self.k]]
        d = distances(self.base[rows], q, self.metric)
        tol = 1e-5 * max(1.0, abs(self.kth[qi]))
        hits = int(np.sum(d <= self.kth[qi] + tol))
        return min(hits, self.k) / self.k
