-- Every replica seen lately, for `GET /api/v1/state`: each one writes its row at every
-- tick of its lease loop and reads back the rows written within three ticks. A replica
-- that stops cleanly deletes its row; one that is killed leaves it to age out, so
-- nothing here needs cleaning up. `leader` is what the replica believed at its tick;
-- `followed` the last `salve_trail.seq` it had folded.
CREATE TABLE salve_replica (
    name text PRIMARY KEY,
    seen_at timestamptz NOT NULL,
    leader boolean NOT NULL,
    followed bigint
);
