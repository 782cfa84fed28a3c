//! The one integration test binary: the real router, server and CLI against
//! real Postgres (a fresh database per test) and loopback HTTP mocks.

mod audit;
mod cli;
mod deploy;
mod governance;
mod helpers;
mod llm;
mod router;
mod server;
mod slack;
mod slack_mock;
mod store;
mod vault;
mod workspaces;
