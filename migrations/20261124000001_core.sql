-- Pincer core schema: people, agents, workspaces, conversations, memory,
-- inbound dedupe, the hash-chained audit log, and leases.

CREATE TABLE users (
    id          BIGSERIAL PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'member', 'observer')),
    -- The workspace this person's asks run in; NULL means shared.
    active_workspace TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Removed people keep their row (the audit log names them) but lose all access.
    removed_at  TIMESTAMPTZ
);

-- A platform account (Slack user in a team, Telegram user of a bot, …) linked to a person.
CREATE TABLE identities (
    platform         TEXT NOT NULL,
    tenant           TEXT NOT NULL,
    platform_user_id TEXT NOT NULL,
    user_id          BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    linked_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, tenant, platform_user_id)
);
CREATE INDEX identities_user ON identities (user_id);

-- Agents mirror the config; the policy column is a snapshot of its ACL.
-- Disabling is runtime state shared by every replica.
CREATE TABLE agents (
    name            TEXT PRIMARY KEY,
    owner_email     TEXT NOT NULL,
    policy          JSONB NOT NULL,
    disabled_at     TIMESTAMPTZ,
    disabled_by     TEXT,
    disabled_reason TEXT,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE workspaces (
    name        TEXT PRIMARY KEY,
    owner_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX workspaces_owner ON workspaces (owner_id);

ALTER TABLE users ADD CONSTRAINT users_active_workspace_fk
    FOREIGN KEY (active_workspace) REFERENCES workspaces (name) ON DELETE SET NULL;

CREATE TABLE conversations (
    id         BIGSERIAL PRIMARY KEY,
    platform   TEXT NOT NULL,
    tenant     TEXT NOT NULL,
    channel    TEXT NOT NULL,
    thread     TEXT NOT NULL DEFAULT '',
    agent      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (platform, tenant, channel, thread)
);

CREATE TABLE messages (
    id              BIGSERIAL PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    author          TEXT NOT NULL CHECK (author IN ('user', 'assistant')),
    user_id         BIGINT REFERENCES users (id) ON DELETE SET NULL,
    workspace       TEXT,
    body            TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX messages_conversation ON messages (conversation_id, id);

-- Memory: scope is a namespace prefix; search is full text over a GIN index,
-- with the scope checked on the (capped) candidates. A composite
-- btree_gin (scope, tsv) index measured 5x slower for multi-scope searches.
CREATE TABLE memory_items (
    id         BIGSERIAL PRIMARY KEY,
    scope      TEXT NOT NULL,
    source     TEXT NOT NULL,
    locator    TEXT NOT NULL DEFAULT '',
    author     TEXT NOT NULL,
    body       TEXT NOT NULL,
    tsv        TSVECTOR GENERATED ALWAYS AS (to_tsvector('english', body)) STORED,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX memory_items_tsv ON memory_items USING GIN (tsv);
CREATE INDEX memory_items_scope_source ON memory_items (scope, source);

-- Durable dedupe: an event key is stored before anything else happens.
CREATE TABLE inbound_events (
    platform    TEXT NOT NULL,
    dedupe_key  TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, dedupe_key)
);
CREATE INDEX inbound_events_received ON inbound_events (received_at);

-- The audit log: append-only and hash-chained. audit_head holds the chain's
-- tip; locking it serialises appends so seq and prev_hash never race.
CREATE TABLE audit_log (
    seq        BIGINT PRIMARY KEY,
    ts         TIMESTAMPTZ NOT NULL,
    user_email TEXT,
    action     TEXT NOT NULL,
    metadata   JSONB NOT NULL,
    prev_hash  TEXT NOT NULL,
    row_hash   TEXT NOT NULL
);

CREATE TABLE audit_head (
    id       SMALLINT PRIMARY KEY CHECK (id = 1),
    seq      BIGINT NOT NULL,
    row_hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, row_hash) VALUES (1, 0, repeat('0', 64));

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- Leases: one holder at a time for singleton work (the daemon's housekeeping).
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
