"""The store: migrations, embedded chDB in a temp dir, cluster DDL, the data-dir lock."""
import subprocess
import sys
import textwrap


from revwatch import schema


def test_migrations_twice_in_a_row_are_idempotent(store):
    assert store.schema_versions() == [m.version for m in schema.MIGRATIONS]
    assert store.migrate() == []                     # second run applies nothing
    assert store.migrate() == []
    n = store.query(f"SELECT count() FROM {store.table('schema_migrations')}").scalar()
    assert n == len(schema.MIGRATIONS)
    tables = {r[0] for r in store.query(f"SHOW TABLES FROM {store.database}").rows}
    assert {"spans", "events", "milestones", "samples", "slo_minutes", "api_keys", "anomalies", "alerts",
            "trace_id_ts", "ingest_log", "kv_state"} <= tables


def test_state_roundtrip_latest_wins(store):
    assert store.get_state("k") is None
    store.put_state("k", "1")
    store.put_state("k", "2")
    assert store.get_state("k") == "2"


def test_cluster_rendering_uses_replicated_engines_on_cluster():
    stmt = schema.render(schema.MIGRATIONS[0].statements[0], "rw", cluster="prod")
    assert "ON CLUSTER prod" in stmt and "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/rw/{table}'" in stmt
    assert "rw.spans_local" in stmt
    dist = schema.distributed_statement("spans", "rw", "prod")
    assert "Distributed(prod, rw, spans_local, cityHash64(CorrelationId))" in dist
    single = schema.render(schema.MIGRATIONS[0].statements[0], "rw")
    assert "ON CLUSTER" not in single and "ENGINE = ReplacingMergeTree" in single


def test_embedded_store_in_own_temp_dir_and_lock(tmp_path):
    """A second process sees StoreLocked while the first holds the data dir, and can open it afterwards."""
    data = tmp_path / "data"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from revwatch.store import open_store
        s = open_store("chdb://{data}", "rw")
        s.insert("kv_state", [("a", "b", 1)], ["Key", "Value", "Version"])
        print("ready", flush=True)
        sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        probe = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            from revwatch.store import open_store, StoreLocked
            try:
                open_store("chdb://{data}", "rw")
            except StoreLocked as e:
                print("locked:", e)
        """)], capture_output=True, text=True, timeout=60)
        assert "locked:" in probe.stdout and "revwatch serve" in probe.stdout, probe.stdout + probe.stderr
    finally:
        holder.stdin.close()
        holder.wait(30)
    after = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        from revwatch.store import open_store
        print(open_store("chdb://{data}", "rw").get_state("a"))
    """)], capture_output=True, text=True, timeout=60)
    assert after.stdout.strip() == "b", after.stderr


def test_a_read_runs_beside_a_long_read_and_a_write(store):
    """The embedded store reads through connections of its own (revwatch/store.py EMBEDDED_READ_CONNECTIONS): a
    short read issued while another connection scans, and while a write holds the writer, answers before either
    is done — it does not queue behind them (ordering, not timing: the scan is long enough to still be running)."""
    import threading

    from revwatch.store import EMBEDDED_READ_CONNECTIONS
    assert store.embedded and store.read_slots.n == EMBEDDED_READ_CONNECTIONS >= 2
    done: list[str] = []
    scanning = threading.Event()

    def scan():
        scanning.set()
        store.query("SELECT sum(cityHash64(number)) FROM numbers(3000000000)")
        done.append("scan")

    def write():
        with store._lock:                             # a write in progress holds the writer until the scan ends
            scanning.wait()
            while "scan" not in done:
                threading.Event().wait(0.01)
        done.append("write")

    threads = [threading.Thread(target=scan), threading.Thread(target=write)]
    for t in threads:
        t.start()
    scanning.wait()
    threading.Event().wait(0.2)                        # the scan is running on its connection
    assert store.query("SELECT 1").scalar() == 1
    done.append("short read")
    for t in threads:
        t.join(120)
    assert done.index("short read") < done.index("scan") < done.index("write"), done
