"""Exact ground truth and recall, with ties at the k-th distance counted as hits."""
import numpy as np


def _dist_block(base, base_sq, qs, metric):
    """Distances (rows: base, columns: queries) in float64 for stable ties."""
    dots = (base @ qs.T).astype(np.float64)
    if metric == "l2":
        return base_sq[:, None] - 2.0 * dots + np.einsum("ij,ij->i", qs, qs, dtype=np.float64)[None, :]
    if metric == "ip":
        return -dots
    if metric == "cosine":
        n = np.sqrt(base_sq)[:, None] * np.linalg.norm(qs, axis=1)[None, :]
        return 1.0 - dots / np.where(n == 0, 1, n)
    raise ValueError(metric)


class GroundTruth:
    """Exact top-`k` of every query (computed once, in query batches); recall at any k' ≤ k."""

    def __init__(self, base, ids, queries, k, metric, batch=32):
        self.k = k
        self.metric = metric
        self.base = base
        self.ids = np.asarray(ids)
        self.id_to_row = {int(i): r for r, i in enumerate(self.ids)}
        self.queries = queries
        self.base_sq = np.einsum("ij,ij->i", base, base, dtype=np.float64)
        self.top_dist = np.empty((len(queries), k))
        self.top_ids = np.empty((len(queries), k), dtype=np.int64)
        for s in range(0, len(queries), batch):
            d = _dist_block(base, self.base_sq, queries[s:s + batch], metric)
            for j in range(d.shape[1]):
                col = d[:, j]
                part = np.argpartition(col, k - 1)[:k]
                order = part[np.argsort(col[part], kind="stable")]
                self.top_dist[s + j] = col[order]
                self.top_ids[s + j] = self.ids[order]

    def recall(self, qi, returned, k=None):
        """|returned[:k] ∩ true top-k| / k, where a returned row whose distance equals the
        k-th true distance (within float tolerance) is a hit too."""
        k = k or self.k
        if len(returned) == 0:
            return 0.0
        rows = [self.id_to_row[int(r)] for r in returned[:k]]
        d = _dist_block(self.base[rows], self.base_sq[rows], self.queries[qi:qi + 1], self.metric)[:, 0]
        kth = self.top_dist[qi, k - 1]
        tol = 1e-5 * max(1.0, abs(kth))
        return min(int(np.sum(d <= kth + tol)), k) / k
