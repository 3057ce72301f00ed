-- name: gate_throughput_1m
-- description: entries and exits per gate per minute (event time), partial counts per micro-batch
-- input: checkins
-- output: muster.windows.gate-throughput-1m.v1
SELECT
    event_id,
    gate_id,
    date_bin(INTERVAL '1 minute', scanned_at) AS window_start,
    date_bin(INTERVAL '1 minute', scanned_at) + INTERVAL '1 minute' AS window_end,
    CAST(sum(CASE WHEN direction = 'in' THEN 1 ELSE 0 END) AS BIGINT) AS entries,
    CAST(sum(CASE WHEN direction = 'out' THEN 1 ELSE 0 END) AS BIGINT) AS exits
FROM checkins
GROUP BY event_id, gate_id, date_bin(INTERVAL '1 minute', scanned_at)
ORDER BY event_id, gate_id, window_start
