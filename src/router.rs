//! The router: every event from every adapter goes through here, in this
//! order, and all its writes commit together — in one transaction, or, for
//! a queued platform event whose handling only reads until the end (an ask,
//! a refusal, help), in one statement ([`crate::store::routing`]):
//!
//! 1. **dedupe** — the event's key is stored; a repeat ends here, silently
//!    (platform events were deduplicated when they were queued);
//! 2. **channel** — free text in a channel no agent is bound to is ignored
//!    (audited, no reply);
//! 3. **identity** — platform user → person ([`crate::identity`]);
//! 4. **parse** — a malformed command gets its usage back (audited);
//! 5. **authorise** — role × command × channel's agent ([`crate::policy`]);
//! 6. **execute** — the command's handler ([`crate::handlers`]) or the
//!    button's action ([`crate::actions`]);
//! 7. **audit** — the rows for all of the above, then commit.
//!
//! Nothing has an effect unless its audit row commits with it. Where the
//! replies go depends on the [`Mode`]: returned to the caller (the console,
//! the admin shell), or — for platform events taken off the job queue —
//! written to the outbox with the rest, with an ask turned into an answer
//! job, and the event's job completed in the same commit, so a crash at any
//! point neither loses nor repeats anything. An ask to an agent offered no
//! tools is not written at all here ([`Deferred`]): its answer is produced
//! first and stored in one statement with the router's rows, the event's
//! job held meanwhile.

use std::sync::Arc;
use std::time::Duration;

use pincer_adapters::{ChannelEvent, Dispatch, EventBody, Reply, Visibility};
use pincer_commands::{Command, CommandSpec, Input};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::actions;
use crate::app::{App, Metrics};
use crate::config::AgentConfig;
use crate::handlers::ask::{AnswerJob, AskJob};
use crate::handlers::{self, Ctx, Outcome};
use crate::identity::{self, Resolved};
use crate::messages;
use crate::policy::{self, ChannelAgent, Decision};
use crate::store::audit::{self, AuditEntry};
use crate::store::jobs::{self, JobKind};
use crate::store::outbox::{self, NewOutbound};
use crate::store::{StoreError, Tx, agents, conversations, events, routing};

/// Where an event's replies go.
#[derive(Debug, Clone, Copy)]
pub enum Mode<'a> {
    /// Returned to the caller; the event is deduplicated here.
    Inline,
    /// The event is the queued job `job_id`, held by `worker`; replies go to
    /// the outbox.
    Queued {
        /// The event's job.
        job_id: i64,
        /// The worker holding its lease.
        worker: &'a str,
    },
}

/// How old facts read at ingest may be and still be used: a break-glass
/// disable or a removal committed since is seen by reading again.
const FRESH_FACTS: Duration = Duration::from_millis(100);

/// Routes events to handlers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Router {
    app: Arc<App>,
}

/// What routing produced.
enum Routed {
    /// Replies for the caller.
    Inline(Vec<Reply>),
    /// Stored in the outbox; an ask's answer job, claimed by this worker.
    Queued(Option<Box<(i64, AnswerJob)>>),
    /// An ask accepted with nothing written yet.
    Deferred(Box<Deferred>),
    /// An earlier ask of the same thread is still open: try again later.
    Later,
}

/// What became of a queued platform event.
#[derive(Debug)]
pub enum QueuedOutcome {
    /// Routed and committed; for an ask, its answer job (claimed by the
    /// worker, who should run it next).
    Routed(Option<Box<(i64, AnswerJob)>>),
    /// An ask accepted, nothing written yet: the worker answers it and
    /// writes the router's rows with the answer's
    /// ([`crate::handlers::ask::answer_deferred`]).
    Deferred(Box<Deferred>),
    /// Nothing done: an earlier ask of its thread is still being answered.
    Later,
}

/// What was decided, before it is committed.
struct Decided {
    trail: Vec<AuditEntry>,
    replies: Vec<Reply>,
    ask: Option<AskJob>,
    replaces: Option<i64>,
    /// A refusal to chat, claimed as told ([`crate::app::Told`]) when it
    /// was decided: a write that fails gives the claim back, so the person
    /// is told when the event is tried again.
    told: Option<String>,
}

impl Decided {
    fn quiet(trail: Vec<AuditEntry>) -> Self {
        Self { trail, replies: Vec::new(), ask: None, replaces: None, told: None }
    }
    fn say(trail: Vec<AuditEntry>, reply: Reply) -> Self {
        Self { trail, replies: vec![reply], ask: None, replaces: None, told: None }
    }
    fn told(self, key: Option<String>) -> Self {
        Self { told: key, ..self }
    }
}

impl Router {
    /// A router over the shared state.
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }

    /// The shared state.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Handles one event and returns the replies (console, admin shell).
    /// Never fails: an unexpected error becomes a sentence for the person.
    pub async fn handle(&self, ev: ChannelEvent) -> Vec<Reply> {
        match self.run(&ev, Mode::Inline, None).await {
            Ok(Routed::Inline(mut replies)) => {
                // Chat output never carries a secret (queued replies are
                // scrubbed on their way into the outbox).
                for r in &mut replies {
                    if let std::borrow::Cow::Owned(clean) = crate::redact::scrub(&r.text) {
                        r.text = clean;
                    }
                }
                replies
            }
            Ok(Routed::Queued(_) | Routed::Deferred(_) | Routed::Later) => Vec::new(),
            Err(_) => vec![Reply::error(messages::internal_error(&ev.id))],
        }
    }

    /// Handles one queued platform event; its replies go to the outbox. For
    /// an ask, returns the answer job (already claimed by `worker`, who
    /// should run it next). `facts`: what was read when the event was
    /// stored, used if still fresh. An error leaves the job to be retried
    /// (nothing was committed; or, if the error came after the commit, the
    /// answer job waits for its lease to run out and is then answered by
    /// any worker).
    pub async fn handle_queued(
        &self,
        ev: &ChannelEvent,
        job_id: i64,
        worker: &str,
        facts: Option<routing::Facts>,
    ) -> Result<QueuedOutcome, StoreError> {
        match self.run(ev, Mode::Queued { job_id, worker }, facts).await? {
            Routed::Queued(answer) => Ok(QueuedOutcome::Routed(answer)),
            Routed::Deferred(ask) => Ok(QueuedOutcome::Deferred(ask)),
            Routed::Inline(_) => Ok(QueuedOutcome::Routed(None)),
            Routed::Later => Ok(QueuedOutcome::Later),
        }
    }

    async fn run(
        &self,
        ev: &ChannelEvent,
        mode: Mode<'_>,
        known: Option<routing::Facts>,
    ) -> Result<Routed, StoreError> {
        let span = tracing::info_span!(
            "event",
            event_id = %ev.id,
            platform = %ev.platform(),
            channel = %ev.channel.channel,
            user = %ev.sender.platform_user_id,
            agent = tracing::field::Empty,
        );
        async {
            Metrics::inc(&self.app.metrics.events);
            let result = self.route(ev, mode, known).await;
            if let Err(error) = &result {
                Metrics::inc(&self.app.metrics.errors);
                tracing::error!(%error, "event failed");
            }
            result
        }
        .instrument(span)
        .await
    }

    /// `known`: facts read for the event when it was stored, if any.
    async fn route(
        &self,
        ev: &ChannelEvent,
        mode: Mode<'_>,
        known: Option<routing::Facts>,
    ) -> Result<Routed, StoreError> {
        let app = &*self.app;
        let bound = ev.channel_refs().iter().find_map(|c| app.config.agent_for(c));
        let (tx, facts, known) = match mode {
            Mode::Inline => {
                let mut tx = app.store.pool.begin().await?;
                if !events::record(&mut tx, ev.platform().as_str(), &ev.dedupe_key).await? {
                    tx.rollback().await?;
                    Metrics::inc(&app.metrics.duplicates);
                    tracing::debug!(dedupe_key = %ev.dedupe_key, "duplicate event dropped");
                    return Ok(Routed::Inline(Vec::new()));
                }
                (tx, None, Known::default())
            }
            Mode::Queued { job_id, .. } => {
                // One read for what routing needs to know (unless it was read
                // when the event was stored, for the agent it is bound to); a
                // transaction begins only if a handler writes.
                let mut tx = app.store.pool.lazy().await?;
                let agent = bound.map(|a| a.name.as_str());
                let fresh = |f: &routing::Facts| f.for_agent.as_deref() == agent && f.read_at.elapsed() < FRESH_FACTS;
                let mut facts = match known.filter(fresh) {
                    Some(facts) => facts,
                    None => {
                        // Asks in a conversation (a thread, or one
                        // person's asks at the top of a channel) are
                        // answered in order; commands
                        // and clicks are not asks (an Approve click must
                        // reach the run that waits for it, and `/admin` must
                        // not wait behind a run paused for approval).
                        let is_ask = is_ask(&ev.body);
                        let search = prefetch_for(app, ev, bound);
                        routing::facts(tx.read(), ev, job_id, is_ask, agent, search).await?
                    }
                };
                if facts.earlier_in_thread {
                    tx.commit().await?;
                    return Ok(Routed::Later);
                }
                let known = Known { conversation: facts.conversation, found: facts.found.take() };
                (tx, Some(facts), known)
            }
        };
        let mut tx = tx;
        let mut decided = self.decide(&mut tx, ev, bound, facts).await?;
        let told = decided.told.take();
        let routed = self.finish(tx, ev, mode, decided, known).await;
        if let (Err(_), Some(key)) = (&routed, told) {
            app.told.forget(&key);
        }
        routed
    }

    /// Steps 2–6. Reads go through `tx` outside a transaction until
    /// something is to be written; `facts`, when given, were read for this
    /// event just before.
    async fn decide(
        &self,
        tx: &mut Tx,
        ev: &ChannelEvent,
        bound: Option<&AgentConfig>,
        facts: Option<routing::Facts>,
    ) -> Result<Decided, StoreError> {
        let app = &*self.app;
        let where_ =
            json!({"platform": ev.platform(), "tenant": ev.tenant, "channel": ev.channel.channel, "thread": ev.thread});
        if let Some(agent) = bound {
            tracing::Span::current().record("agent", agent.name.as_str());
        }

        // In a channel with no agent, text is people talking among
        // themselves, and so is a posted message (one with a thread) that
        // does not parse: no reply. Slash commands still get one, and so
        // does text addressed to Pincer by name (it says where agents are).
        if ev.is_chatter() && bound.is_none() {
            return Ok(ignored(app, ev, where_, "no_agent_bound"));
        }

        let (known, agent_state) = match facts {
            Some(f) => (f.user, Some(f.agent)),
            None => (None, None),
        };
        let resolved = match known {
            Some(user) => Resolved::Person(user, Vec::new()),
            // Not linked yet: linking by e-mail or joining writes.
            // (Boxed, here and for the handlers below: the routing future
            // stays small for the common case.)
            None => Box::pin(identity::resolve(tx.write().await?, &app.config, ev)).await?,
        };
        let (user, mut trail) = match resolved {
            Resolved::Person(user, trail) => (user, trail),
            Resolved::Unknown if ev.sender.is_bot => {
                // Another app: not a person asking, and not told anything
                // (two bots answering each other never stop).
                return Ok(ignored(app, ev, where_, "bot"));
            }
            Resolved::Unknown => {
                // The one thing a stranger may do: use a link code they were given.
                if let EventBody::Message(Ok(Input::Command(Command::Link { code: Some(code) }))) = &ev.body {
                    let (entry, outcome) = Box::pin(handlers::link::redeem(tx.write().await?, ev, code, None)).await?;
                    let replies = outcome.replies;
                    return Ok(Decided { trail: vec![entry], replies, ask: None, replaces: None, told: None });
                }
                let told = told_key(ev, "unknown_person");
                if told.as_deref().is_some_and(|k| !app.told.claim(k)) {
                    return Ok(ignored(app, ev, where_, "unknown_person_told"));
                }
                let meta = merged(
                    where_,
                    json!({"reason": "unknown_person", "sender": ev.sender.platform_user_id, "email": ev.sender.verified_email}),
                );
                Metrics::inc(&app.metrics.denied);
                let reply = Reply::error(messages::unknown_person(ev.sender.verified_email.is_some()));
                return Ok(Decided::say(vec![AuditEntry::new(None, "event.denied", meta)], reply).told(told));
            }
        };
        let who = Some(user.email.as_str());

        enum Work<'e> {
            Command(Command),
            Action(&'e pincer_adapters::Action, &'static CommandSpec),
        }
        let work = match &ev.body {
            EventBody::Message(Ok(Input::Command(c))) => Work::Command(c.clone()),
            EventBody::Message(Ok(Input::Text(t))) => Work::Command(Command::Ask { question: t.clone() }),
            EventBody::Message(Err(e)) => {
                trail.push(AuditEntry::new(who, "command.invalid", merged(where_, json!({"error": e.to_string()}))));
                return Ok(Decided::say(trail, Reply::error(messages::on_platform(e.to_string(), ev.platform()))));
            }
            EventBody::Action(a) => match actions::spec(&a.action_id) {
                Some(spec) => Work::Action(a, spec),
                None => {
                    let meta = merged(where_, json!({"action_id": a.action_id, "value": a.value}));
                    trail.push(AuditEntry::new(who, "action.unknown", meta));
                    return Ok(Decided::say(trail, Reply::error(messages::unknown_action(ev.platform()))));
                }
            },
        };
        let spec = match &work {
            Work::Command(c) => c.spec(),
            Work::Action(_, spec) => spec,
        };
        let path = spec.path;

        let agent_state = match (bound, agent_state) {
            (Some(_), Some(read)) => read,
            (Some(a), None) => agents::state(tx.read(), &a.name).await?,
            (None, _) => None,
        };
        let channel_agent = match (bound, &agent_state) {
            (None, _) => ChannelAgent::Unbound,
            (Some(_), Some(s)) if s.is_disabled() => ChannelAgent::Disabled,
            (Some(_), _) => ChannelAgent::Enabled,
        };
        if let Decision::Deny(denial) = policy::authorize(user.role, spec, channel_agent, app.config.rbac) {
            let told = told_key(ev, denial.code());
            if told.as_deref().is_some_and(|k| !app.told.claim(k)) {
                return Ok(Decided::quiet(
                    trail.into_iter().chain(ignored(app, ev, where_, "refusal_told").trail).collect(),
                ));
            }
            let meta = merged(where_, json!({"command": path, "reason": denial.code(), "role": user.role}));
            trail.push(AuditEntry::new(who, "command.denied", meta));
            Metrics::inc(&app.metrics.denied);
            let agent = bound.map(|a| (a.name.as_str(), agent_state.as_ref()));
            // The channel as people know it (`#random`), when the platform
            // said its name.
            let here = ev.channel_refs().pop().unwrap_or_else(|| ev.channel.clone());
            let reply = Reply::error(messages::denial(&denial, path, &app.config, &here, agent));
            return Ok(Decided::say(trail, reply).told(told));
        }

        let ctx = Ctx { app, event: ev, user: &user, agent: bound };
        let outcome: Outcome = match work {
            // Help and an ask's acceptance only read (the question is stored
            // with the event's other writes, in `finish`).
            Work::Command(Command::Ask { question }) => handlers::ask::accept(&ctx, tx.read(), &question).await?,
            Work::Command(command @ Command::Help { .. }) => {
                Box::pin(handlers::execute(&ctx, tx.read(), &command)).await?
            }
            Work::Command(command) => Box::pin(handlers::execute(&ctx, tx.write().await?, &command)).await?,
            Work::Action(action, _) => Box::pin(actions::execute(&ctx, tx.write().await?, action)).await?,
        };
        let meta = merged(where_, merged(outcome.metadata, json!({"ok": outcome.ok})));
        trail.push(AuditEntry::new(who, path.replace(' ', "."), meta));
        Ok(Decided { trail, replies: outcome.replies, ask: outcome.ask, replaces: outcome.replaces, told: None })
    }

    /// Step 7: store the question, audit, deliver per mode, commit.
    async fn finish(
        &self,
        mut tx: Tx,
        ev: &ChannelEvent,
        mode: Mode<'_>,
        decided: Decided,
        known: Known,
    ) -> Result<Routed, StoreError> {
        let app = &*self.app;
        // (`told` was taken by the caller, to be given back if this fails.)
        let Decided { trail, replies, ask, replaces, told: _ } = decided;
        let ask = ask.map(|mut ask| {
            // Memory found with the facts, if searched in the scopes this
            // ask may read; otherwise the answer searches.
            ask.prefetched = known
                .found
                .filter(|f| f.scopes.iter().map(String::as_str).eq(ask.scopes.iter().map(|s| s.as_str())))
                .map(|f| f.passages);
            AnswerJob { ask, event: ev.clone(), progress_id: None, run: None }
        });
        if let Mode::Queued { job_id, .. } = mode
            && !tx.begun()
            && replies.is_empty()
            && ask.as_ref().is_some_and(|j| deferrable(app, &j.ask))
            && let Some(mut job) = ask
        {
            // Nothing was written while deciding, and the answer may well
            // come at once: the router's writes wait for it, to go in the
            // same statement ([`crate::handlers::ask::answer_deferred`]).
            tx.commit().await?; // (nothing was begun: gives the connection back)
            job.ask.conversation_id = known.conversation.unwrap_or(0);
            job.ask.new_thread = known.conversation.is_none();
            return Ok(Routed::Deferred(Box::new(Deferred { job_id, trail, answer: job })));
        }
        if let Mode::Queued { job_id, worker } = mode
            && !tx.begun()
        {
            // Nothing was written while deciding: the job's completion, the
            // question, the answer job, the replies and the audit rows go in
            // one statement.
            let rows: Vec<NewOutbound<'_>> =
                replies.iter().map(|r| outbound(ev, r, false, replaces, Duration::ZERO)).collect();
            let new_ask = ask.as_ref().map(|job| routing::NewAsk {
                thread: handlers::ask::thread_of(ev),
                agent: job.ask.agent.as_str(),
                user_id: job.ask.user_id,
                workspace: job.ask.workspace.as_deref(),
                question: &job.ask.question,
                payload: job,
                lease: crate::worker::LEASE,
            });
            let done = routing::finish(tx.read(), job_id, worker, new_ask.as_ref(), &rows, trail).await?;
            tx.commit().await?; // (nothing was begun: gives the connection back)
            let Some(done) = done else {
                return Err(StoreError::LeaseLost(job_id));
            };
            if !replies.is_empty() {
                app.wake.outbox.notify_one();
            }
            let answer = match (ask, done.answer_job, done.conversation_id) {
                (Some(mut job), Some(id), Some(conversation)) => {
                    job.ask.conversation_id = conversation;
                    job.ask.new_thread = done.new_thread;
                    Some(Box::new((id, job)))
                }
                _ => None,
            };
            return Ok(Routed::Queued(answer));
        }
        let conn = tx.write().await?;
        // A queued event's job row is taken before the audit head, the same
        // lock order as everywhere else; and a lost lease writes nothing.
        if let Mode::Queued { job_id, worker } = mode
            && !jobs::complete(conn, job_id, worker).await?
        {
            tx.rollback().await?;
            return Err(StoreError::LeaseLost(job_id));
        }
        let answer = match ask {
            Some(mut job) => {
                let a = &job.ask;
                let (conversation, fresh) = conversations::open_with_message(
                    conn,
                    handlers::ask::thread_of(ev),
                    a.agent.as_str(),
                    a.user_id,
                    a.workspace.as_deref(),
                    &a.question,
                )
                .await?;
                job.ask.conversation_id = conversation;
                job.ask.new_thread = fresh;
                Some(job)
            }
            None => None,
        };
        audit::append(conn, trail).await?;
        let worker = match mode {
            Mode::Inline => app.handoff.worker.as_ref(),
            Mode::Queued { worker, .. } => worker,
        };
        if let Mode::Queued { .. } = mode {
            for reply in &replies {
                outbox::insert(conn, &outbound(ev, reply, false, replaces, Duration::ZERO)).await?;
            }
        }
        // An ask is a job, held by this worker while it answers, so a
        // process that dies mid-answer loses nothing.
        let answer = match answer {
            Some(job) => {
                let id = jobs::enqueue_claimed(conn, JobKind::Answer, &job, worker, crate::worker::LEASE).await?;
                Some((id, job))
            }
            None => None,
        };
        tx.commit().await?;
        match mode {
            Mode::Inline => {
                let mut replies = replies;
                if let Some((id, job)) = answer {
                    replies.push(Box::pin(handlers::ask::answer_inline(app, job, id, &app.handoff.worker)).await?);
                }
                Ok(Routed::Inline(replies))
            }
            Mode::Queued { .. } => {
                if !replies.is_empty() {
                    app.wake.outbox.notify_one();
                }
                Ok(Routed::Queued(answer.map(Box::new)))
            }
        }
    }
}

/// What the facts read for a queued event brought besides routing's needs.
#[derive(Default)]
struct Known {
    /// The thread's conversation, if it has one.
    conversation: Option<i64>,
    /// Memory found for the ask.
    found: Option<routing::Found>,
}

/// An ask the router accepted and wrote nothing for: the event's job
/// (still held), the router's audit rows, and the answer job to run.
#[derive(Debug)]
pub struct Deferred {
    /// The event's job.
    pub job_id: i64,
    /// The router's audit rows for the event.
    pub trail: Vec<AuditEntry>,
    /// The ask, as it would be queued.
    pub answer: AnswerJob,
}

/// Whether an accepted ask's writes may wait for its answer: a plain
/// model call (a tool loop saves its progress in the answer job), with no
/// question embedding to fetch first.
fn deferrable(app: &App, ask: &AskJob) -> bool {
    app.config.embeddings.is_none()
        && app.config.agents.get(&ask.agent).is_some_and(|agent| !crate::agent::uses_tools(app, agent))
}

/// Whether `body` asks the bound agent something (free text or `/ask`).
/// Only asks wait for the earlier jobs of their conversation and read it
/// (a thread's, or outside a thread the asker's own in the channel:
/// `ChannelEvent::conversation_thread`); commands and button clicks go
/// through at once.
pub fn is_ask(body: &EventBody) -> bool {
    matches!(body, EventBody::Message(Ok(Input::Text(_) | Input::Command(Command::Ask { .. }))))
}

/// The memory search to run with a queued event's facts: for an ask (free
/// text, or `/ask`) to a bound agent, without embeddings (whose ranking
/// needs the question's vector first).
pub(crate) fn prefetch_for<'e>(
    app: &App,
    ev: &'e ChannelEvent,
    bound: Option<&'e AgentConfig>,
) -> Option<routing::Prefetch<'e>> {
    let agent = bound.filter(|_| app.config.embeddings.is_none())?;
    let question = match &ev.body {
        EventBody::Message(Ok(Input::Text(t))) => t.as_str(),
        EventBody::Message(Ok(Input::Command(Command::Ask { question }))) => question.as_str(),
        _ => return None,
    };
    Some(routing::Prefetch { question, scopes: &agent.memory_scopes })
}

/// The outbox row for a reply to `ev`: ephemeral replies go to the sender
/// only; answers go to the event's thread.
pub fn outbound<'a>(
    ev: &'a ChannelEvent,
    reply: &'a Reply,
    is_progress: bool,
    progress_of: Option<i64>,
    delay: Duration,
) -> NewOutbound<'a> {
    NewOutbound {
        platform: ev.reply_to.channel.platform.as_str(),
        tenant: &ev.tenant,
        channel: &ev.reply_to.channel.channel,
        thread: ev.reply_to.thread.as_deref(),
        response_url: ev.reply_to.response_url.as_deref(),
        recipient: (reply.visibility == Visibility::Ephemeral).then_some(ev.sender.platform_user_id.as_str()),
        reply,
        is_progress,
        progress_of,
        delay,
    }
}

impl Dispatch for Router {
    async fn dispatch(&self, event: ChannelEvent) -> Vec<Reply> {
        self.handle(event).await
    }
}

/// Merges two JSON objects (keys of `b` win).
pub(crate) fn with(a: &Value, b: Value) -> Value {
    merged(a.clone(), b)
}

/// What a refusal for `reason` is remembered by, when it is to chat posted
/// in a channel (a message not addressed to Pincer): someone told there
/// within [`crate::app::Told::FOR`] that they cannot ask — an observer, a
/// stranger, anyone while the agent is disabled — is not told again.
/// `None`: a refusal always said (to a mention, a command, a click).
fn told_key(ev: &ChannelEvent, reason: &str) -> Option<String> {
    (ev.is_chatter() && ev.is_posted()).then(|| {
        format!("{}:{}:{}:{}:{reason}", ev.platform(), ev.tenant, ev.channel.channel, ev.sender.platform_user_id)
    })
}

/// An event answered with nothing, only audited (`event.ignored`, with why).
fn ignored(app: &App, ev: &ChannelEvent, where_: Value, reason: &str) -> Decided {
    Metrics::inc(&app.metrics.ignored);
    let meta = merged(where_, json!({"reason": reason, "sender": ev.sender.platform_user_id}));
    Decided::quiet(vec![AuditEntry::new(None, "event.ignored", meta)])
}

/// [`with`], taking `a` (no copy of it).
fn merged(mut a: Value, b: Value) -> Value {
    if let (Some(o), Value::Object(extra)) = (a.as_object_mut(), b) {
        o.extend(extra);
    }
    a
}
