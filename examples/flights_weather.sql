-- Flights joined with the weather at their origin as of their departure
-- time: an event-time temporal join. Run from the repository root:
--   cargo run -p tributary-cli -- -i examples/flights_stream_tables.sql -f examples/flights_weather.sql
-- The same statements run in BATCH with --mode batch; folding the STREAMING
-- changelog gives the BATCH result, minus the flights STREAMING reports late
-- (tests/cross_mode.rs checks this on these queries).
--
-- Each flight (event time `time_hour`, its scheduled hour of departure)
-- meets the observation of its origin airport valid at that time: the
-- latest one at or before it. STREAMING holds a flight until the watermark
-- of both tables has passed its time, so that no earlier observation can
-- still arrive, then emits it once (+I); it keeps per airport only the
-- observations from the one valid at the watermark onward.

SET 'execution.runtime-mode' = 'streaming';
SET 'parallelism.default' = '1';

-- New Year's Day, the first departures from JFK (before 7 am local time,
-- 10:00 and 11:00 UTC), with the weather then.
CREATE VIEW jfk_new_year AS
SELECT * FROM flights_stream WHERE month = 1 AND day = 1 AND origin = 'JFK' AND hour < 7;

SELECT f.time_hour, f.carrier, f.flight, f.dest, f.dep_delay,
       w.time_hour AS observed, w.temp, w.wind_speed, w.visib
FROM jfk_new_year AS f
JOIN weather_stream FOR SYSTEM_TIME AS OF f.time_hour AS w
  ON f.origin = w.origin;

-- The whole year: departure delay by origin and the weather at departure.
-- LEFT keeps the flights with no observation (none here). The aggregate
-- updates with every flight, so show the folded table, not the changelog.
SET 'sql-client.execution.result-mode' = 'table';

SELECT origin, weather, COUNT(*) AS flights, ROUND(AVG(dep_delay), 1) AS avg_dep_delay_min
FROM (
  SELECT f.origin, f.dep_delay,
         CASE WHEN w.visib IS NULL THEN 'unknown'
              WHEN w.visib < 1 THEN 'fog'
              WHEN w.precip > 0 THEN 'precipitation'
              WHEN w.wind_speed >= 25 THEN 'wind'
              ELSE 'fair' END AS weather
  FROM flights_stream AS f
  LEFT JOIN weather_stream FOR SYSTEM_TIME AS OF f.time_hour AS w
    ON f.origin = w.origin
)
GROUP BY origin, weather;
