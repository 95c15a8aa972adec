//! The executor plugin interface of Playground.
//!
//! A plugin is a value implementing [`Executor`]: it names its kind, reports
//! its health, validates an environment's executor config without side
//! effects, optionally prepares an environment, and launches runs. Plugins
//! receive plain data ([`RunSpec`]) and write output to a [`LogSink`]; they
//! never touch the database and never depend on `api`.
//!
//! The [`Registry`] maps each [`ExecutorKind`] to its plugin; the server
//! builds it once at start-up.

mod config;
mod executor;
mod pipeline;
mod registry;
mod spec;

#[cfg(feature = "test-support")]
pub mod compliance;

pub use config::parse_config;
pub use executor::*;
pub use pipeline::{LineStream, LogPipeline, MAX_LINE_BYTES, NumberedLine};
pub use registry::Registry;
pub use spec::*;
