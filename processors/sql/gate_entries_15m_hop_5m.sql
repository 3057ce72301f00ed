-- name: gate_entries_15m_hop_5m
-- description: entries per gate in 15-minute windows every 5 minutes (hopping), partial counts
-- input: checkins
-- output: muster.windows.gate-entries-15m-hop-5m.v1
-- table: gate_entries_15m_hop_5m
-- key: event_id, gate_id, window_start
-- merge: window_end = max, entries = sum
SELECT
    event_id,
    gate_id,
    window_start,
    window_start + INTERVAL '15 minutes' AS window_end,
    count(*) AS entries
FROM (
    SELECT event_id, gate_id, date_bin(INTERVAL '5 minutes', scanned_at) AS window_start
    FROM checkins WHERE direction = 'in'
    UNION ALL
    SELECT event_id, gate_id, date_bin(INTERVAL '5 minutes', scanned_at) - INTERVAL '5 minutes'
    FROM checkins WHERE direction = 'in'
    UNION ALL
    SELECT event_id, gate_id, date_bin(INTERVAL '5 minutes', scanned_at) - INTERVAL '10 minutes'
    FROM checkins WHERE direction = 'in'
) AS hops
GROUP BY event_id, gate_id, window_start
ORDER BY event_id, gate_id, window_start
