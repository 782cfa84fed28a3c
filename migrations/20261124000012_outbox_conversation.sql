-- A public answer posted outside any thread (a slash command's /ask): its
-- conversation, which a thread started under the posted answer continues.
-- No foreign key: set only on such rows, and a removed conversation only
-- means no continuation.
ALTER TABLE outbox ADD COLUMN conversation_id BIGINT;
