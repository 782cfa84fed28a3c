-- A reply whose last attempt may have reached the platform: its lease ran out
-- while it was being sent (the process died, or its delivery was never
-- recorded), or the attempt failed in a way that does not say whether the
-- platform took it (a timeout, a 5xx). Before sending such a reply again the
-- dispatcher looks for it on the platform (Slack: in the thread, by the
-- outbox id it carries in its message metadata), so it is not posted twice.
ALTER TABLE outbox ADD COLUMN maybe_sent BOOLEAN NOT NULL DEFAULT false;
