-- Tokens and cost of every answered ask, for /admin usage and budgets.
CREATE TABLE usage (
    id          BIGSERIAL PRIMARY KEY,
    ts          TIMESTAMPTZ NOT NULL DEFAULT now(),
    user_email  TEXT NOT NULL,
    agent       TEXT NOT NULL,
    provider    TEXT NOT NULL,
    tokens_in   BIGINT NOT NULL DEFAULT 0,
    tokens_out  BIGINT NOT NULL DEFAULT 0,
    -- Millionths of a US dollar, from the provider's configured prices.
    cost_micros BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX usage_user_ts ON usage (user_email, ts);
CREATE INDEX usage_agent_ts ON usage (agent, ts);
CREATE INDEX usage_ts ON usage (ts);
