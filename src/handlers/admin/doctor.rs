//! `/admin doctor` and `pincer admin doctor`: the governance checklist,
//! checked against the running config and database, one pass/fail line
//! each — RBAC on, no plaintext secrets in the config, audit shipped and
//! kept for a set time, every agent owned by a person and prompted by a
//! file in the repo, and break-glass exercised for real.

use serde_json::json;
use sqlx::PgConnection;

use crate::handlers::{Ctx, Outcome};
use crate::store::{StoreError, agents, audit, users};

/// A sink this many rows behind the head is not "shipping".
const MAX_SHIPPING_LAG: i64 = 1000;

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Whether it passed.
    pub pass: bool,
    /// What was found, and how to fix a failure.
    pub detail: String,
}

/// Runs every check. The break-glass probe runs inside a savepoint that is
/// rolled back, so it leaves nothing behind.
pub async fn checks(ctx: &Ctx<'_>, conn: &mut PgConnection) -> Result<Vec<Check>, StoreError> {
    let config = &ctx.app.config;
    let mut out = Vec::new();
    let mut check = |name, pass, detail: String| out.push(Check { name, pass, detail });

    check(
        "RBAC on",
        config.rbac,
        if config.rbac {
            "role checks are enforced".into()
        } else {
            "RBAC is OFF (PINCER_RBAC or rbac: false): turn it on outside local development".into()
        },
    );
    check(
        "no plaintext secrets in config",
        !config.plaintext_secrets,
        if config.plaintext_secrets {
            "a secret is written in the config file: use env://, file:// or vault:// (see `pincer config check`)".into()
        } else if config.vault {
            "every secret is a reference; Vault is configured".into()
        } else {
            "every secret is a reference (env:// or file://)".into()
        },
    );
    let head = audit::head_seq(conn).await?;
    match &config.audit.sink {
        None => check(
            "audit shipped off-box",
            false,
            "no audit.sink configured: add sink: {file: …} or sink: {http: …} so the log leaves this database".into(),
        ),
        Some(sink) => {
            let shipped = audit::cursor(conn, &sink.name()).await?;
            let lag = head - shipped;
            check(
                "audit shipped off-box",
                lag <= MAX_SHIPPING_LAG,
                format!(
                    "{} has shipped up to seq {shipped} of {head}{}",
                    sink.name(),
                    if lag > MAX_SHIPPING_LAG {
                        " — is a daemon (pincer serve --role daemon|all) running?"
                    } else {
                        ""
                    }
                ),
            );
        }
    }
    let days = config.audit.retention_days;
    let keyed = config.audit.signing_key.is_some();
    check(
        "audit retention set",
        days > 0 && keyed,
        match (days, keyed) {
            (0, _) => "audit.retention_days is 0: the log is never trimmed".into(),
            (d, false) => format!(
                "{d} days, but audit.signing_key is not set, so retention cannot sign its checkpoint and does not run"
            ),
            (d, true) => format!("rows older than {d} days are removed behind a signed checkpoint"),
        },
    );
    let mut owners_ok = true;
    let mut problems = Vec::new();
    for a in config.agents.values() {
        let owner = users::by_email(conn, &a.owner).await?;
        if owner.is_none() {
            owners_ok = false;
            problems.push(format!("{}: owner {} is not an active person", a.name, a.owner));
        }
        let prompt = config.dir().join(&a.prompt_path);
        if a.prompt.trim().is_empty() || !prompt.is_file() {
            owners_ok = false;
            problems.push(format!("{}: prompt file {} is missing or empty", a.name, prompt.display()));
        }
    }
    check(
        "every agent has an owner and a prompt file",
        owners_ok,
        if problems.is_empty() {
            format!("{} checked", crate::messages::count(config.agents.len() as u64, "agent", "agents"))
        } else {
            problems.join("; ")
        },
    );
    let probe = break_glass_probe(conn, ctx.user.email.as_str()).await?;
    check(
        "break-glass works",
        probe.is_ok(),
        match probe {
            Ok(()) => "a probe agent was disabled and enabled again through the same switch every process reads".into(),
            Err(why) => why,
        },
    );
    Ok(out)
}

async fn break_glass_probe(conn: &mut PgConnection, by: &str) -> Result<Result<(), String>, StoreError> {
    let name =
        pincer_commands::AgentName::parse("pincer-doctor-probe").map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query("SAVEPOINT doctor_probe").execute(&mut *conn).await?;
    agents::ensure(conn, &name, by).await?;
    let disabled = agents::disable(conn, &name, by, "pincer admin doctor probe").await?
        && agents::state(conn, &name).await?.is_some_and(|s| s.is_disabled());
    let enabled =
        agents::enable(conn, &name).await? && agents::state(conn, &name).await?.is_some_and(|s| !s.is_disabled());
    sqlx::query("ROLLBACK TO SAVEPOINT doctor_probe").execute(&mut *conn).await?;
    Ok(match (disabled, enabled) {
        (true, true) => Ok(()),
        (false, _) => Err("disabling the probe agent did not take effect".into()),
        (true, false) => Err("enabling the probe agent again did not take effect".into()),
    })
}

/// The report as a reply; the outcome is `ok` only when every check passes.
pub async fn run(ctx: &Ctx<'_>, conn: &mut PgConnection) -> Result<Outcome, StoreError> {
    let checks = checks(ctx, conn).await?;
    let failed = checks.iter().filter(|c| !c.pass).count();
    let mut text = String::from("Governance checklist:");
    for c in &checks {
        text.push_str(&format!("\n{} {} — {}", if c.pass { "PASS" } else { "FAIL" }, c.name, c.detail));
    }
    text.push_str(&if failed == 0 {
        "\nAll checks pass.".to_string()
    } else {
        match failed {
            1 => "\n1 check fails.".to_string(),
            n => format!("\n{n} checks fail."),
        }
    });
    let meta = json!({"failed": checks.iter().filter(|c| !c.pass).map(|c| c.name).collect::<Vec<_>>()});
    let mut outcome = Outcome::done(text, meta);
    if failed > 0 {
        // The whole report, marked as a failure (the admin shell exits non-zero).
        outcome.ok = false;
        outcome.replies = vec![pincer_adapters::Reply::error(outcome.replies.remove(0).text)];
    }
    Ok(outcome)
}
