-- Governance: approvals for dangerous tool calls, one-time codes that link
-- a person's accounts across platforms, the audit sink's cursor, and the
-- signed checkpoint retention leaves behind.

-- A tool call waiting for (or given) a person's approval. Bound to the run
-- (its job), the tool and a hash of the exact arguments; used at most once.
CREATE TABLE approvals (
    id           BIGSERIAL PRIMARY KEY,
    -- Random, carried in the buttons' value: a click names its approval by it.
    token        TEXT NOT NULL UNIQUE,
    job_id       BIGINT NOT NULL,
    agent        TEXT NOT NULL,
    asker_email  TEXT NOT NULL,
    tool         TEXT NOT NULL,
    -- The arguments as shown to approvers (secrets redacted).
    arguments    TEXT NOT NULL,
    args_hash    TEXT NOT NULL,
    -- Where the request was posted: a click must come from there.
    platform     TEXT NOT NULL,
    tenant       TEXT NOT NULL,
    channel      TEXT NOT NULL,
    -- The request message in the outbox (its buttons are replaced by the decision).
    outbox_id    BIGINT,
    state        TEXT NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'voided')),
    decided_by   TEXT,
    decided_at   TIMESTAMPTZ,
    expires_at   TIMESTAMPTZ NOT NULL,
    -- When the approved call ran: an approval is good for one call.
    used_at      TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX approvals_pending ON approvals (agent) WHERE state = 'pending';

-- `/link`: a code issued to a person on one platform, typed on another.
CREATE TABLE link_codes (
    code_hash   TEXT PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- How far each audit sink has shipped.
CREATE TABLE audit_cursor (
    sink       TEXT PRIMARY KEY,
    seq        BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Retention removes rows up to `seq`; the checkpoint keeps that row's hash,
-- signed, so verification starts from it.
CREATE TABLE audit_checkpoint (
    id         SMALLINT PRIMARY KEY CHECK (id = 1),
    seq        BIGINT NOT NULL,
    row_hash   TEXT NOT NULL,
    ts         TIMESTAMPTZ NOT NULL,
    signature  TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The append-only triggers let one thing through: retention, which says so
-- for its own transaction, deletes rows from the start of the chain.
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('pincer.audit_retention', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
