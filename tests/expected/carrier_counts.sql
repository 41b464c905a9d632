SELECT carrier, COUNT(*) AS n FROM flights GROUP BY carrier ORDER BY n DESC
