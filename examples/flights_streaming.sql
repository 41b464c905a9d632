-- The flights as a stream. Run from the repository root:
--   cargo run -p tributary-cli -- -i examples/flights_stream_tables.sql -f examples/flights_streaming.sql
-- The same statements run in BATCH with --mode batch; folding the STREAMING
-- changelog gives the BATCH result, minus the rows STREAMING reports late.

SET 'execution.runtime-mode' = 'streaming';
-- Small batches and one task per operator, so the changelog shows rows and
-- updates as they arrive, in the file's order.
SET 'datafusion.execution.batch_size' = '100';
SET 'parallelism.default' = '1';

-- New Year's Day only, to keep the output short.
CREATE VIEW new_year AS SELECT * FROM flights_stream WHERE month = 1 AND day = 1;

-- Departures and average delay per origin in 1-hour tumbling windows of
-- scheduled departure time: each window is emitted once, as +I, when the
-- watermark (3 hours behind the latest departure read) passes its end.
SELECT window_start, window_end, origin, COUNT(*) AS departures,
       ROUND(AVG(dep_delay), 1) AS avg_delay_min
FROM TABLE(TUMBLE(TABLE new_year, DESCRIPTOR(time_hour), INTERVAL '1' HOUR))
WHERE origin = 'JFK'
GROUP BY window_start, window_end, origin;

-- An updating aggregate: every carrier's count is revised (-U, +U) as
-- flights arrive; the last +U of each carrier is its final count.
SELECT carrier, COUNT(*) AS flights, ROUND(AVG(arr_delay), 1) AS avg_arr_delay_min
FROM new_year
GROUP BY carrier;
