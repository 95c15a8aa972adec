//! End-to-end tests: each test starts the real `playground` binary on a random port (once
//! against SQLite and once against PostgreSQL) and drives it over HTTP, WebSocket and its CLI.

#[macro_use]
mod support;

mod attacks;
mod audit;
mod auth;
mod bad_input;
mod cli;
mod docker;
mod environments;
mod execution;
mod executors;
mod hardening;
mod logs;
mod matrix;
mod program_validation;
mod programs;
mod roles;
mod runs;
mod schema_contract;
mod storage;
mod transport;
