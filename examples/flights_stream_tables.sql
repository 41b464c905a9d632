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
