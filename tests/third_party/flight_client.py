"""Runs steps against muster's Arrow Flight SQL endpoint with the ADBC Flight SQL driver
(PyPI: adbc-driver-flightsql, pyarrow), as an analyst's notebook would, and prints one JSON
result per step. Used by tests/flight.rs.

    python flight_client.py grpc://127.0.0.1:50051 TOKEN < steps.json

TOKEN "-" connects without an authorization header. steps.json is a list of
{"query": "SQL"} (executed with cursor.execute, rows fetched as Arrow),
{"ingest": "table"} (cursor.adbc_ingest of a one-row table) or {"tables": true}
(connection.adbc_get_objects). Each result is {"rows": [...]} / {"ingested": n} /
{"tables": [...]}, or {"error": "...", "kind": "ExceptionClass"}.
"""

import json
import sys

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi
import pyarrow


def connect(uri, token):
    db_kwargs = {}
    if token != "-":
        db_kwargs[adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value] = (
            f"Bearer {token}"
        )
    # autocommit: the endpoint has no transactions (it never writes).
    return adbc_driver_flightsql.dbapi.connect(uri, db_kwargs=db_kwargs, autocommit=True)


def run(conn, step):
    with conn.cursor() as cur:
        if "query" in step:
            cur.execute(step["query"])
            table = cur.fetch_arrow_table()
            return {"columns": table.column_names, "rows": table.to_pylist()}
        if "ingest" in step:
            data = pyarrow.table({"event_id": ["intruder"], "current_attendees": [1]})
            return {"ingested": cur.adbc_ingest(step["ingest"], data, mode="append")}
        if "tables" in step:
            objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
            return {
                "tables": sorted(
                    t["table_name"]
                    for c in objects
                    for s in c["catalog_db_schemas"] or []
                    for t in s["db_schema_tables"] or []
                )
            }
    raise ValueError(f"unknown step {step}")


def main():
    uri, token = sys.argv[1], sys.argv[2]
    steps = json.load(sys.stdin)
    results = []
    try:
        conn = connect(uri, token)
    except Exception as e:  # noqa: BLE001 - reported to the test, which decides
        print(json.dumps([{"error": str(e), "kind": type(e).__name__}] * len(steps)))
        return
    with conn:
        for step in steps:
            try:
                results.append(run(conn, step))
            except Exception as e:  # noqa: BLE001 - reported to the test, which decides
                results.append({"error": str(e), "kind": type(e).__name__})
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
