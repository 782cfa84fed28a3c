//! Pincer's command language: what people type in chat and on the admin
//! shell, parsed into typed values.
//!
//! - [`names`] — validated names (`WorkspaceName`, `ScopeName`, `AgentName`,
//!   `Email`, `Role`), the one strict naming rule.
//! - [`spec`] — the table of commands: usage, help text, required role.
//! - [`parse`] — `parse_line` / `parse_command` into [`Input`] and [`Command`].
//!
//! This crate is pure: no I/O, no clock, no database. The router decides who
//! may run a command and executes it; this crate only says what was asked.

pub mod names;
pub mod parse;
pub mod spec;

pub use names::{AgentName, Email, NameError, Role, ScopeName, WorkspaceName};
pub use parse::{AdminCommand, Command, Input, ParseError, WorkspaceCommand, clean_text, parse_command, parse_line};
pub use spec::{CommandSpec, SPECS, help_text};
