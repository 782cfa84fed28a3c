-- Platform events and answers wait in `jobs` until a worker claims them
-- (FOR UPDATE SKIP LOCKED, with a lease); replies wait in `outbox` until a
-- dispatcher delivers them. Both survive a crash of any process.

CREATE TABLE jobs (
    id           BIGSERIAL PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('event', 'answer')),
    payload      JSONB NOT NULL,
    run_after    TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts     INT NOT NULL DEFAULT 0,
    locked_by    TEXT,
    locked_until TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX jobs_due ON jobs (run_after, id);

CREATE TABLE outbox (
    id           BIGSERIAL PRIMARY KEY,
    platform     TEXT NOT NULL,
    tenant       TEXT NOT NULL,
    channel      TEXT NOT NULL,
    thread       TEXT,
    response_url TEXT,
    -- The platform user an ephemeral reply is for.
    recipient    TEXT,
    -- The reply: text, visibility, kind, buttons.
    reply        JSONB NOT NULL,
    -- A "working on it…" message, posted only if the answer is slow.
    is_progress  BOOLEAN NOT NULL DEFAULT false,
    -- For an answer: the progress message it replaces (updated in place).
    progress_of  BIGINT REFERENCES outbox (id),
    status       TEXT NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'sending', 'delivered', 'dead')),
    not_before   TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts     INT NOT NULL DEFAULT 0,
    locked_until TIMESTAMPTZ,
    last_error   TEXT,
    -- The platform's id for the delivered message (Slack `ts`).
    platform_ts  TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at TIMESTAMPTZ
);
CREATE INDEX outbox_open ON outbox (platform, tenant, channel, id) WHERE status IN ('pending', 'sending');
CREATE INDEX outbox_due ON outbox (not_before, id) WHERE status IN ('pending', 'sending');
CREATE INDEX outbox_dead ON outbox (id) WHERE status = 'dead';

-- 👍 / 👎 on an answer, one vote per person per message.
CREATE TABLE feedback (
    outbox_id  BIGINT NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    helpful    BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (outbox_id, user_id)
);
