-- One replica decides and acts: the holder of this lease. `epoch` grows by one with
-- every change of holder; a replica writes what it decides with its epoch, and the
-- trigger refuses a write whose epoch no longer holds an unexpired lease (fencing), so
-- an old leader that was paused or cut off cannot record, and so cannot act, after
-- another took over. The lease row is locked (FOR SHARE) by every fenced write, so a
-- takeover waits for the writes of the epoch it ends.
CREATE TABLE salve_lease (
    id int PRIMARY KEY CHECK (id = 1),
    holder text NOT NULL,
    epoch bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
INSERT INTO salve_lease (id, holder, epoch, expires_at) VALUES (1, '', 0, '-infinity');

ALTER TABLE salve_trail ADD COLUMN epoch bigint;

CREATE FUNCTION salve_fence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM salve_lease
        WHERE id = 1 AND epoch = NEW.epoch AND expires_at > clock_timestamp()
        FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'salve: epoch % does not hold the lease', NEW.epoch
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN NEW;
END
$$;

-- Only what the decider writes carries an epoch; what any replica received does not,
-- and costs no trigger call.
CREATE TRIGGER salve_fence BEFORE INSERT ON salve_trail
    FOR EACH ROW WHEN (NEW.epoch IS NOT NULL) EXECUTE FUNCTION salve_fence();
