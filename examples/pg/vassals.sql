-- A table of vassals for `emperor --emperor 'pg://CONNINFO;QUERY'`, with the
-- triggers that make a change take effect at once (LISTEN/NOTIFY).
--
--   psql -d mydb -f examples/pg/vassals.sql
--   emperor --emperor 'pg://host=db dbname=mydb user=emperor;SELECT name,config,ts FROM vassals'
--
-- The Emperor LISTENs on the channel "emperor" (emperor-pg-channel changes it;
-- keep it equal to the argument of the notify trigger below). Without the
-- trigger it still sees every change at its next scan, every emperor-freq
-- seconds.

CREATE TABLE IF NOT EXISTS vassals (
    name   text PRIMARY KEY,         -- with its extension: app.ini, api.yaml, ...
    config text NOT NULL,            -- the config text, passed over the config fd
    ts     timestamptz NOT NULL DEFAULT now(),  -- a change of ts or config reloads
    uid    integer,                  -- tyrant mode only: who the vassal runs as
    gid    integer,
    host   text                      -- fleets: which Emperor runs it (see README)
);

-- Keep ts current: an UPDATE that forgets to set it still counts as a change
-- for uWSGI's emperor_pg, which compares only the time.
CREATE OR REPLACE FUNCTION emperor_touch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.ts IS NOT DISTINCT FROM OLD.ts THEN
        NEW.ts := clock_timestamp();
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS vassals_touch ON vassals;
CREATE TRIGGER vassals_touch BEFORE UPDATE ON vassals
    FOR EACH ROW EXECUTE FUNCTION emperor_touch();

-- One notification per statement (not per row): a bulk INSERT of 1,000 rows
-- wakes the Emperor once, and it reads the table once. The notification is
-- sent when the transaction commits, so the Emperor never sees uncommitted
-- rows.
CREATE OR REPLACE FUNCTION emperor_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], TG_TABLE_NAME);
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS vassals_notify ON vassals;
CREATE TRIGGER vassals_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON vassals
    FOR EACH STATEMENT EXECUTE FUNCTION emperor_notify('emperor');
