#!/usr/bin/env python3
"""One day of a topic's Iceberg table read by a query engine, for `catchup_bench table-scan`
(issue 19). pyiceberg plans the scan of day DAY (UTC, YYYY-MM-DD: the partition filter prunes
the other days' files) and reads the Parquet files from the bucket into arrow; DuckDB then runs
one aggregate over all rows (count, value bytes, first and last timestamp). Prints one line of
JSON: the times exclude the Python imports, which are given apart.

    python3 scripts/table_scan.py http://127.0.0.1:PORT BUCKET PREFIX/iceberg/TOPIC DAY
"""
import datetime
import json
import sys
import time

t_import = time.time()
import duckdb  # noqa: E402
from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan  # noqa: E402
from pyiceberg.table import StaticTable  # noqa: E402

endpoint, bucket, path, day = sys.argv[1:5]
props = {
    "s3.endpoint": endpoint,
    "s3.region": "us-east-1",
    "s3.access-key-id": "test",
    "s3.secret-access-key": "test",
    "s3.force-virtual-addressing": "false",
}
start = datetime.datetime.fromisoformat(day).replace(tzinfo=datetime.timezone.utc)
end = start + datetime.timedelta(days=1)
t0 = time.time()
table = StaticTable.from_metadata(f"s3://{bucket}/{path}", props)
scan = table.scan(row_filter=And(GreaterThanOrEqual("timestamp", start.isoformat()),
                                 LessThan("timestamp", end.isoformat())))
arrow = scan.to_arrow()  # noqa: F841 (DuckDB finds it by name)
t1 = time.time()
rows, value_bytes, first, last = duckdb.sql(
    "select count(*), sum(octet_length(value)), min(timestamp), max(timestamp) from arrow"
).fetchall()[0]
t2 = time.time()
tasks = list(scan.plan_files())
print(json.dumps({
    "rows": rows, "value_bytes": int(value_bytes or 0), "files": len(tasks),
    "file_bytes": sum(t.file.file_size_in_bytes for t in tasks),
    "scan_s": round(t1 - t0, 3), "query_s": round(t2 - t1, 3), "import_s": round(t0 - t_import, 3),
    "first": str(first), "last": str(last),
}))
