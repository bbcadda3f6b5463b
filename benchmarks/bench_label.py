"""The labelling page's latency at scale: a synthetic version with N pairs (default 10,000), two annotators'
labels on all of them (one transaction each, as the page writes them), 2,000 undone; then 50 rounds of what a
key press costs (`/api/next` + `/api/label` over HTTP) and one `/api/stats`.

    python benchmarks/bench_label.py [N]
"""
import http.client
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
import polars as pl
from datafactory.store import Store
from datafactory.labels import LabelStore, pair_key
from datafactory.label_server import LabelServer, LabelSession

tmp = Path(tempfile.mkdtemp())
root = tmp / "data"
vdir = root / "big" / "v1"; (vdir / "tables").mkdir(parents=True)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
rows = [{"id": f"s/{i}", "source": ["sft", "hate"][i % 2], "prompt": f"질문 {i} " * 5, "context": None,
         "response_a": f"답 가 {i} " * 30, "response_b": f"답 나 {i} " * 30, "judge": "a", "decided_by": "judge",
         "outcome": "kept"} for i in range(n)]
df = pl.DataFrame(rows).with_columns(pl.Series("pair_key", [pair_key(r["prompt"], r["response_a"], r["response_b"]) for r in rows]))
df.write_parquet(vdir / "tables" / "pairs.parquet")
(vdir / "manifest.json").write_text(json.dumps({"name": "big", "version": "v1", "files": {}}))
(root / "big" / "latest").write_text("v1")
store = Store(root); labels = LabelStore(store.labels)
t0 = time.perf_counter()
for i, r in enumerate(df.head(n).iter_rows(named=True)):
    for who in ("kim", "lee"):
        labels.add(request_id=f"{who}{i}", annotator=who, dataset="big", pair=r, decision="a", seconds=3.0)
print(f"{2 * n:,} labels written one transaction each: {time.perf_counter() - t0:.1f} s")
# remove the labels of 2,000 pairs so there is work left
for i in range(min(2000, n)):
    labels.undo(request_id=f"u{i}", annotator="kim", dataset="big")
srv = LabelServer(LabelSession(store, "big", labels)); srv.start()
c = http.client.HTTPConnection(*srv.server_address[:2])
def req(method, path, body=None):
    c.request(method, path, body=json.dumps(body).encode() if body else None, headers={"Content-Type": "application/json"} if body else {})
    r = c.getresponse(); return json.loads(r.read())
times, gets, posts = [], [], []
for i in range(50):
    t = time.perf_counter()
    item = req("GET", "/api/next?annotator=kim")["item"]
    t1 = time.perf_counter()
    req("POST", "/api/label", {"annotator": "kim", "pair_key": item["pair_key"], "left_is": item["left_is"], "decision": "left", "request_id": item["request_id"]})
    t2 = time.perf_counter()
    times.append(t2 - t); gets.append(t1 - t); posts.append(t2 - t1)
med = lambda x: statistics.median(x) * 1000
print(f"label + next, {n:,} pairs, {2 * n - min(2000, n):,} live labels: median {med(times):.0f} ms (next {med(gets):.0f} ms, label {med(posts):.0f} ms), max {max(times)*1000:.0f} ms")
t = time.perf_counter(); req("GET", "/api/stats"); print(f"stats: {(time.perf_counter()-t)*1000:.0f} ms")
srv.shutdown()
shutil.rmtree(tmp)
