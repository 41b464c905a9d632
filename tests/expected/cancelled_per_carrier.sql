SELECT carrier, COUNT(*) AS flights, COUNT(*) FILTER (WHERE dep_time IS NULL) AS cancelled FROM flights GROUP BY carrier ORDER BY carrier
