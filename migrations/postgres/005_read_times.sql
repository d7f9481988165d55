-- Times read back in the hub's own text format (src/domain/time.rs `iso`):
-- `2026-11-25T06:40:00.123456+00:00`, UTC with microseconds. SQLite stores that
-- text as written; PostgreSQL stores the instant, so every read of a timestamptz
-- column selects hub_iso(col) and the actors see exactly what SQLite would give.
-- IMMUTABLE holds: the zone is fixed to UTC and the pattern has no locale fields.
CREATE FUNCTION hub_iso(t timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') $$;
