-- salve's audit trail: every record a replica writes, in the order it was committed.
-- `record` is the record as `salve audit --json` prints it, kept as written (json, not
-- jsonb) so it reads back exactly; `at` and `kind` are copied out for queries.
CREATE TABLE salve_trail (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL,
    kind text NOT NULL,
    record json NOT NULL
);
CREATE INDEX salve_trail_at ON salve_trail (at);
