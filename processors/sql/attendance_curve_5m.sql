-- name: attendance_curve_5m
-- description: attendance per event per 5 minutes: samples, sum, peak and low, to merge into averages and peaks
-- input: normalized
-- output: muster.windows.attendance-5m.v1
-- table: attendance_curve_5m
-- key: event_id, window_start
-- merge: window_end = max, samples = sum, sum_attendees = sum, peak_attendees = max, low_attendees = min, registered = max
SELECT
    event_id,
    date_bin(INTERVAL '5 minutes', observed_at) AS window_start,
    date_bin(INTERVAL '5 minutes', observed_at) + INTERVAL '5 minutes' AS window_end,
    count(*) AS samples,
    sum(current_attendees) AS sum_attendees,
    max(current_attendees) AS peak_attendees,
    min(current_attendees) AS low_attendees,
    max(total_registered) AS registered
FROM normalized
GROUP BY event_id, date_bin(INTERVAL '5 minutes', observed_at)
ORDER BY event_id, window_start
