-- The flights as an event-time stream: `time_hour` (the scheduled hour of
-- departure, UTC) is the event time, and the watermark trails the largest
-- time seen by 3 hours. The file is in order of actual departure, so event
-- time is out of order by each flight's delay: a flight more than about 3
-- hours late arrives after the watermark passed its hour, and a window that
-- has already closed counts it as a late row.

CREATE TABLE flights_stream (
  year INT, month INT, day INT,
  dep_time INT, sched_dep_time INT, dep_delay DOUBLE,
  arr_time INT, sched_arr_time INT, arr_delay DOUBLE,
  carrier STRING, flight INT, tailnum STRING,
  origin STRING, dest STRING, air_time DOUBLE, distance DOUBLE,
  hour INT, minute INT, time_hour TIMESTAMP(3),
  WATERMARK FOR time_hour AS time_hour - INTERVAL '3' HOUR
) WITH (
  'connector' = 'filesystem',
  'path' = 'examples/data/flights.parquet',
  'format' = 'parquet'
);

-- The hourly weather at each origin airport as a versioned table (Flink's
-- term): the PRIMARY KEY says which rows are versions of the same thing
-- (an airport's weather), the event time says from when each version is
-- valid (until the airport's next observation). A temporal join reads the
-- version valid at another row's time:
--   JOIN weather_stream FOR SYSTEM_TIME AS OF f.time_hour AS w ON f.origin = w.origin
-- The file is in time order; the watermark trails like the flights'.

CREATE TABLE weather_stream (
  origin STRING, year INT, month INT, day INT, hour INT,
  temp DOUBLE, dewp DOUBLE, humid DOUBLE, wind_dir INT,
  wind_speed DOUBLE, wind_gust DOUBLE, precip DOUBLE, pressure DOUBLE,
  visib DOUBLE, time_hour TIMESTAMP(3),
  WATERMARK FOR time_hour AS time_hour - INTERVAL '3' HOUR,
  PRIMARY KEY (origin) NOT ENFORCED
) WITH (
  'connector' = 'filesystem',
  'path' = 'examples/data/weather.parquet',
  'format' = 'parquet'
);
