//! Conversations (one per channel thread, and one per person for what is
//! asked outside any thread) and their messages.

use sqlx::PgConnection;

use super::StoreError;

/// Where a conversation happens.
#[derive(Debug, Clone, Copy)]
pub struct ThreadKey<'a> {
    /// Platform name.
    pub platform: &'a str,
    /// Platform workspace.
    pub tenant: &'a str,
    /// Channel.
    pub channel: &'a str,
    /// The thread the ask was posted in, if any.
    pub thread: Option<&'a str>,
    /// Who asked: outside any thread, the conversation is theirs.
    pub asker: &'a str,
}

impl<'a> ThreadKey<'a> {
    /// The conversation's thread key as stored: the thread, or the asker's
    /// own (`pincer_adapters::conversation_thread`).
    pub fn key(&self) -> std::borrow::Cow<'a, str> {
        pincer_adapters::conversation_thread(self.thread, self.asker)
    }
}

// The thread's conversation (created on first use) and the asker's message,
// in one statement.
// (`xmax = 0`: the row was inserted, not updated — a new thread.)
const OPEN_WITH_MESSAGE: &str = "WITH c AS (
         INSERT INTO conversations (platform, tenant, channel, thread, agent) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (platform, tenant, channel, thread) DO UPDATE SET agent = EXCLUDED.agent
         RETURNING id, xmax = 0 AS fresh
     ),
     m AS (INSERT INTO messages (conversation_id, author, user_id, workspace, body) SELECT id, 'user', $6, $7, $8 FROM c)
     SELECT id, fresh FROM c";
const ADD_MESSAGE: &str =
    "INSERT INTO messages (conversation_id, author, user_id, workspace, body) VALUES ($1, $2, $3, $4, $5)";

// The newest messages of a conversation from one workspace (NULL = shared).
const RECENT: &str = "SELECT author = 'assistant' AS assistant, body FROM messages
     WHERE conversation_id = $1 AND workspace IS NOT DISTINCT FROM $2
     ORDER BY id DESC LIMIT $3";

pub(crate) const QUERIES: &[(&str, &str)] = &[
    ("conversations.open_with_message", OPEN_WITH_MESSAGE),
    ("conversations.add_message", ADD_MESSAGE),
    ("conversations.recent", RECENT),
];

/// The conversation for a thread (created on first use) with a person's
/// message added to it. Returns the conversation id and whether it is new.
pub async fn open_with_message(
    conn: &mut PgConnection,
    key: ThreadKey<'_>,
    agent: &str,
    user_id: i64,
    workspace: Option<&str>,
    body: &str,
) -> Result<(i64, bool), StoreError> {
    Ok(sqlx::query_as(OPEN_WITH_MESSAGE)
        .bind(key.platform)
        .bind(key.tenant)
        .bind(key.channel)
        .bind(key.key())
        .bind(agent)
        .bind(user_id)
        .bind(workspace)
        .bind(body)
        .fetch_one(conn)
        .await?)
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author {
    /// A person.
    User,
    /// The agent.
    Assistant,
}

/// Appends a message to a conversation.
pub async fn add_message(
    conn: &mut PgConnection,
    conversation_id: i64,
    author: Author,
    user_id: Option<i64>,
    workspace: Option<&str>,
    body: &str,
) -> Result<(), StoreError> {
    let author = match author {
        Author::User => "user",
        Author::Assistant => "assistant",
    };
    sqlx::query(ADD_MESSAGE)
        .bind(conversation_id)
        .bind(author)
        .bind(user_id)
        .bind(workspace)
        .bind(body)
        .execute(conn)
        .await?;
    Ok(())
}

/// The newest `limit` messages of a conversation in `workspace`, newest
/// first, as (by the assistant, text).
pub async fn recent(
    conn: &mut PgConnection,
    conversation_id: i64,
    workspace: Option<&str>,
    limit: i64,
) -> Result<Vec<(bool, String)>, StoreError> {
    Ok(sqlx::query_as(RECENT).bind(conversation_id).bind(workspace).bind(limit).fetch_all(conn).await?)
}
