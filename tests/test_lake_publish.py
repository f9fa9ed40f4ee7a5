"""A streamed append (pyarrow writes the files, delta-rs commits them) must give readers the same
table, the same file pruning and the same Delta semantics as delta-rs's own writer."""

import datetime as dt
import random

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from resources.lake import LakeResource

UTC = pa.timestamp("us", tz="UTC")


def _events(n: int = 20_000, seed: int = 7) -> pa.Table:
    rng = random.Random(seed)
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    rows = {
        "at": [
            start + dt.timedelta(microseconds=rng.randrange(5 * 86_400 * 10**6)) for _ in range(n)
        ],
        "account": [None if rng.random() < 0.1 else f"A{rng.randrange(500):04d}" for _ in range(n)],
        "units": [rng.randrange(-50, 50) for _ in range(n)],
        "score": [rng.random() for _ in range(n)],
    }
    rows["day"] = [a.date() for a in rows["at"]]
    table = pa.table(
        rows,
        pa.schema(
            [
                ("at", UTC),
                ("account", pa.string()),
                ("units", pa.int64()),
                ("score", pa.float64()),
                ("day", pa.date32()),
            ]
        ),
    )
    return table.sort_by("day")


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([("at", "ascending"), ("units", "ascending")])


def test_streamed_append_reads_back_like_a_delta_rs_write(tmp_path):
    lake = LakeResource(root=str(tmp_path))
    data = _events()
    first, second = data.slice(0, 12_000), data.slice(12_000)

    p1 = lake.publish("raw", "t", first.to_reader(max_chunksize=1_000), partition_by=["day"])
    p2 = lake.publish("raw", "t", second.to_reader(max_chunksize=1_000))
    write_deltalake(str(tmp_path / "reference"), data, partition_by=["day"])

    assert (p1.version, p1.rows_written) == (0, 12_000)
    assert (p2.version, p2.rows_written, p2.total_rows) == (1, 8_000, 20_000)
    ours = lake.table("raw", "t")
    assert ours.metadata().partition_columns == ["day"]
    assert ours.metadata().name == "raw.t"
    assert _sorted(ours.to_pyarrow_table().select(data.column_names)).equals(_sorted(data))

    # Delta statistics: counts equal delta-rs's; min/max equal or (timestamps) rounded outwards.
    reference = DeltaTable(str(tmp_path / "reference"))
    for column in ("account", "units", "at"):
        probe = data[column][4_321].as_py()
        f = pads.field(column) == pa.scalar(probe, data.schema.field(column).type)
        expected = reference.to_pyarrow_dataset().to_table(filter=f).num_rows
        assert ours.to_pyarrow_dataset().to_table(filter=f).num_rows == expected > 0
    stats = pa.table(ours.get_add_actions(flatten=True)).to_pylist()
    assert sum(s["num_records"] for s in stats) == 20_000
    assert sum(s["null_count.account"] for s in stats) == data["account"].null_count
    for s in stats:
        in_file = pq.read_table(tmp_path / "raw" / "t" / s["path"])
        assert s["min.units"] == pa.compute.min(in_file["units"]).as_py()
        assert s["max.at"] >= pa.compute.max(in_file["at"]).as_py()
        assert s["min.at"] <= pa.compute.min(in_file["at"]).as_py()
        assert s["min.score"] is None  # floats carry no bounds: no file is ever skipped on them


def test_streamed_append_with_a_new_column_merges_the_schema(tmp_path):
    lake = LakeResource(root=str(tmp_path))
    data = _events(2_000)
    lake.publish("raw", "t", data.to_reader(), partition_by=["day"])
    wider = data.append_column("channel", pa.array(["web"] * data.num_rows))
    published = lake.publish("raw", "t", wider.to_reader())

    table = lake.table("raw", "t").to_pyarrow_table()
    assert published.total_rows == 4_000
    assert table.schema.field("channel").type in (pa.string(), pa.large_string(), pa.string_view())
    assert table["channel"].null_count == 2_000


def test_streamed_append_refuses_a_type_change_and_keeps_the_version(tmp_path):
    lake = LakeResource(root=str(tmp_path))
    data = _events(1_000)
    lake.publish("raw", "t", data.to_reader(), partition_by=["day"])
    changed = data.set_column(2, "units", pa.compute.cast(data["units"], pa.string()))
    with pytest.raises(ValueError, match="units"):
        lake.publish("raw", "t", changed.to_reader())
    assert lake.version("raw", "t") == 0


@pytest.mark.parametrize("stream", [False, True], ids=["table", "stream"])
def test_a_claim_taken_before_another_writers_commit_is_refused(tmp_path, stream):
    """Two exactly-once appends from the same snapshot: the second commit raises WriteConflict
    and the table keeps the first's version and rows; a fresh claim then commits."""
    from resources.lake import WriteConflict

    lake = LakeResource(root=str(tmp_path))
    data = _events(500)
    give = (lambda t: t.to_reader()) if stream else (lambda t: t)
    lake.publish("raw", "t", give(data), partition_by=["day"])
    a, b = (lake.claim("raw", "t", "ingest x", data.schema) for _ in range(2))
    assert lake.publish("raw", "t", give(data.slice(0, 100)), claim=a).version == 1
    with pytest.raises(WriteConflict, match="moved past version 0"):
        lake.publish("raw", "t", give(data.slice(0, 100)), claim=b)
    assert lake.version("raw", "t") == 1
    assert lake.table("raw", "t").to_pyarrow_table().num_rows == 600

    other = lake.claim("raw", "t", "ingest y", data.schema)  # another writer's claim: no conflict
    assert lake.publish("raw", "t", give(data.slice(0, 1)), claim=other).version == 2
    again = lake.claim("raw", "t", "ingest x", data.schema)
    assert again.transaction().version == 2
    assert lake.publish("raw", "t", give(data.slice(0, 1)), claim=again).version == 3


def _twice_at_once(write) -> None:
    """`write` in two threads released together (a barrier), as two runs meeting."""
    import threading

    start = threading.Barrier(2)

    def go() -> None:
        start.wait()
        write()

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.mark.parametrize("stream", [False, True], ids=["table", "stream"])
def test_two_claims_on_a_table_that_does_not_exist_publish_its_rows_once(tmp_path, stream):
    """Two exactly-once writers of a new table at the same instant, each retrying on
    WriteConflict as the raw ingest does. Two creating commits would both land, even with the
    same Delta `txn` (delta-rs 1.x doubled the rows in 40 of 40 tries): the claim creates the
    table empty first, so every commit with rows is checked against another's."""

    from resources.lake import WriteConflict

    data = _events(300)
    give = (lambda t: t.to_reader()) if stream else (lambda t: t)
    for attempt in range(6):
        lake = LakeResource(root=str(tmp_path / str(attempt)))

        def write(lake: LakeResource = lake) -> None:
            for _ in range(3):
                claim = lake.claim("raw", "t", "ingest x", data.schema, ["day"])
                if claim.snapshot.to_pyarrow_dataset().count_rows():
                    return  # the other writer's rows are there: nothing left to add
                try:
                    lake.publish("raw", "t", give(data), claim=claim)
                    return
                except WriteConflict:
                    continue  # the other writer committed first: read again

        _twice_at_once(write)
        assert lake.table("raw", "t").to_pyarrow_table().num_rows == data.num_rows
        assert lake.table("raw", "t").metadata().partition_columns == ["day"]


def test_two_first_writes_of_the_same_days_never_double_them(tmp_path):
    """Two writers replacing the same days of a table that does not exist yet, at the same
    instant: with the table created empty first (`ensure`), delta-rs checks the second commit
    against the first and refuses it, where two creating writes could both land."""

    from deltalake.exceptions import CommitFailedError

    data = _events(300)
    for attempt in range(6):
        lake = LakeResource(root=str(tmp_path / str(attempt)))
        refused = []

        def write(lake: LakeResource = lake, refused: list = refused) -> None:
            try:
                lake.ensure("events", "t", data.schema, ["day"])
                lake.publish("events", "t", data, mode="overwrite", predicate="day >= '2025-01-01'")
            except CommitFailedError:
                refused.append(True)

        _twice_at_once(write)
        assert lake.table("events", "t").to_pyarrow_table().num_rows == data.num_rows
        assert len(refused) <= 1


def test_exclusive_admits_one_holder_at_a_time_and_reenters(tmp_path):
    import threading
    import time

    lake = LakeResource(root=str(tmp_path))
    inside, most, guard = [0], [0], threading.Lock()

    def hold() -> None:
        with lake.exclusive("ml/model"), lake.exclusive("ml/model"):  # re-entrant in a thread
            with guard:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.05)
            with guard:
                inside[0] -= 1

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1
    assert (tmp_path / ".locks" / "ml__model.lock").exists()
