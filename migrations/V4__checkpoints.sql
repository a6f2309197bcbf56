-- The policy state as of a point of the trail: `seq` is the last record it holds, `body`
-- the same versioned, checksummed bytes as the file trail's state.checkpoint. The leader
-- writes one as the trail grows and keeps the newest few; a replica that starts or takes
-- the lead reads the newest it can and only the records after it.
CREATE TABLE salve_checkpoint (
    seq bigint PRIMARY KEY,
    written_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    body bytea NOT NULL
);
