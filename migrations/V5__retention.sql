-- What retention (`[store] keep_for`) has removed from salve_trail: every record up to
-- `removed_through`. Retention never goes past the oldest kept checkpoint, nor past what
-- a live replica has yet to read, so a start always finds a checkpoint and every record
-- after it; readers (`salve audit`, `report`, `replay`) say when a window reaches back
-- past what is kept.
CREATE TABLE salve_retention (
    id int PRIMARY KEY CHECK (id = 1),
    removed_through bigint NOT NULL
);
INSERT INTO salve_retention (id, removed_through) VALUES (1, 0);
