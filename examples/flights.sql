-- A first session on the flight data. Run from the repository root:
--   cargo run -p tributary-cli -- -i examples/flights_tables.sql -f examples/flights.sql

-- How much data is there?
SELECT COUNT(*) AS flights, COUNT(DISTINCT carrier) AS carriers,
       COUNT(DISTINCT dest) AS destinations
FROM flights;

-- The most delayed routes (at least 300 flights), with airline and airport names.
SELECT f.origin, o.name AS origin_airport, f.dest, d.name AS destination,
       a.name AS airline, COUNT(*) AS flights,
       ROUND(AVG(f.arr_delay), 1) AS avg_arr_delay_min
FROM flights f
JOIN airlines a ON f.carrier = a.carrier
JOIN airports o ON f.origin = o.faa
JOIN airports d ON f.dest = d.faa
WHERE f.arr_delay IS NOT NULL
GROUP BY f.origin, o.name, f.dest, d.name, a.name
HAVING COUNT(*) >= 300
ORDER BY avg_arr_delay_min DESC, flights DESC, f.origin, f.dest
LIMIT 10;

-- Average delay by scheduled hour of departure: delays build up over the day.
SELECT hour, COUNT(*) AS flights,
       ROUND(AVG(dep_delay), 1) AS avg_dep_delay_min,
       ROUND(AVG(arr_delay), 1) AS avg_arr_delay_min
FROM flights
GROUP BY hour
ORDER BY hour;

-- The share of cancelled flights (no departure time) by carrier.
SELECT f.carrier, a.name AS airline, COUNT(*) AS flights,
       COUNT(*) FILTER (WHERE f.dep_time IS NULL) AS cancelled,
       ROUND(100.0 * COUNT(*) FILTER (WHERE f.dep_time IS NULL) / COUNT(*), 2) AS cancelled_pct
FROM flights f
JOIN airlines a ON f.carrier = a.carrier
GROUP BY f.carrier, a.name
ORDER BY cancelled_pct DESC, f.carrier;
