//! Usage: tokens and cost per answered ask, summed per person and agent for
//! `/admin usage`, and per person and agent per day for budgets.

use sqlx::{FromRow, PgConnection};

use super::StoreError;

/// One answered ask's usage.
#[derive(Debug, Clone, Copy)]
pub struct NewUsage<'a> {
    /// Who asked.
    pub user_email: &'a str,
    /// Which agent answered.
    pub agent: &'a str,
    /// Which provider.
    pub provider: &'a str,
    /// Prompt tokens.
    pub tokens_in: i64,
    /// Completion tokens.
    pub tokens_out: i64,
    /// Cost in millionths of a dollar.
    pub cost_micros: i64,
}

/// A total over a period.
#[derive(Debug, Clone, FromRow)]
pub struct Total {
    /// A person's e-mail or an agent's name.
    pub key: String,
    /// Answered asks.
    pub runs: i64,
    /// Prompt tokens.
    pub tokens_in: i64,
    /// Completion tokens.
    pub tokens_out: i64,
    /// Millionths of a dollar.
    pub cost_micros: i64,
}

const INSERT: &str = "INSERT INTO usage (user_email, agent, provider, tokens_in, tokens_out, cost_micros) VALUES ($1, $2, $3, $4, $5, $6)";
const BY_USER: &str = "SELECT user_email AS key, count(*) AS runs, COALESCE(sum(tokens_in), 0)::bigint AS tokens_in,
            COALESCE(sum(tokens_out), 0)::bigint AS tokens_out, COALESCE(sum(cost_micros), 0)::bigint AS cost_micros
     FROM usage WHERE ts >= now() - make_interval(days => $1) GROUP BY user_email ORDER BY cost_micros DESC, key";
const BY_AGENT: &str = "SELECT agent AS key, count(*) AS runs, COALESCE(sum(tokens_in), 0)::bigint AS tokens_in,
            COALESCE(sum(tokens_out), 0)::bigint AS tokens_out, COALESCE(sum(cost_micros), 0)::bigint AS cost_micros
     FROM usage WHERE ts >= now() - make_interval(days => $1) GROUP BY agent ORDER BY cost_micros DESC, key";
const TODAY: &str = "SELECT COALESCE(sum(tokens_in + tokens_out) FILTER (WHERE user_email = $1), 0)::bigint,
            COALESCE(sum(tokens_in + tokens_out) FILTER (WHERE agent = $2), 0)::bigint
     FROM usage WHERE ts >= date_trunc('day', now()) AND (user_email = $1 OR agent = $2)";

pub(crate) const QUERIES: &[(&str, &str)] =
    &[("usage.insert", INSERT), ("usage.by_user", BY_USER), ("usage.by_agent", BY_AGENT), ("usage.today", TODAY)];

/// Records one answered ask.
pub async fn record(conn: &mut PgConnection, u: &NewUsage<'_>) -> Result<(), StoreError> {
    sqlx::query(INSERT)
        .bind(u.user_email)
        .bind(u.agent)
        .bind(u.provider)
        .bind(u.tokens_in)
        .bind(u.tokens_out)
        .bind(u.cost_micros)
        .execute(conn)
        .await?;
    Ok(())
}

/// Totals per person and per agent over the last `days` days.
pub async fn totals(conn: &mut PgConnection, days: i32) -> Result<(Vec<Total>, Vec<Total>), StoreError> {
    let by_user = sqlx::query_as(BY_USER).bind(days).fetch_all(&mut *conn).await?;
    let by_agent = sqlx::query_as(BY_AGENT).bind(days).fetch_all(conn).await?;
    Ok((by_user, by_agent))
}

/// Tokens used today (since midnight UTC) by a person and by an agent.
pub async fn today(conn: &mut PgConnection, user_email: &str, agent: &str) -> Result<(i64, i64), StoreError> {
    Ok(sqlx::query_as(TODAY).bind(user_email).bind(agent).fetch_one(conn).await?)
}
