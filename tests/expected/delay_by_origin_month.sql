SELECT origin, month, COUNT(*) AS flights, COUNT(dep_delay) AS departed, AVG(dep_delay) AS avg_dep_delay FROM flights GROUP BY origin, month ORDER BY origin, month
