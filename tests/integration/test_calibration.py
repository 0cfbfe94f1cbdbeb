"""The calibrated search setting lives in the index's metapage: it survives a restart and
scans keep using it; a recall.tune() survives a crash."""
import pytest
from pgcluster import Cluster
from runner import datasets
from test_durability import indexed_table


@pytest.mark.parametrize("am,knob", [("hnsw", "ef_search"), ("ivfflat", "probes")])
def test_calibration_survives_a_restart(am, knob):
    c = Cluster(f"calibration-{am}").init().start()
    try:
        base, queries = datasets.gaussian_mixture(5000, 32, 50, centres=20, seed=5)
        with c.connect() as p:
            indexed_table(p, base, 32, am)
            p.execute("DROP INDEX rp_embedding_idx")
            p.execute(f"CREATE INDEX rp_embedding_idx ON rp USING {am} (embedding vector_l2_ops) "
                      "WITH (target_recall = 0.9, target_k = 10)")
            before = p.execute("SELECT recall.index_info('rp_embedding_idx')->'calibration'").fetchone()[0]
        assert before["chosen"][knob] >= 1 and before["measured_recall"] >= 0.9
        c.stop()
        c.start()
        with c.connect() as p:
            after = p.execute("SELECT recall.index_info('rp_embedding_idx')->'calibration'").fetchone()[0]
            assert after == before
            effective = p.execute(
                f"SELECT params->>'effective_{knob}' FROM recall.evaluate('rp_embedding_idx', "
                "'SELECT embedding FROM rp LIMIT 5', 10)").fetchone()[0]
            assert int(effective) == before["chosen"][knob]
            # recall.tune writes the metapage through WAL: a crash right after it (no
            # checkpoint) replays the new calibration.
            tuned = p.execute("SELECT recall.tune('rp_embedding_idx', 0.99)->'calibration'").fetchone()[0]
            assert tuned["by"] == "recall.tune" and tuned["target_recall"] == 0.99
        c.kill9()
        c.start()
        with c.connect() as p:
            assert p.execute("SELECT recall.index_info('rp_embedding_idx')->'calibration'").fetchone()[0] == tuned
    finally:
        c.destroy()
