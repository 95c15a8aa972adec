//! sea-orm entities of Playground: one module per table and the enums stored
//! in them. Nothing here knows about GraphQL, HTTP or executors; `api/`
//! converts these models into its own types explicitly.

pub mod api_tokens;
pub mod audit_events;
pub mod blobs;
pub mod credentials;
pub mod enums;
pub mod environments;
pub mod grants;
pub mod program_files;
pub mod program_tags;
pub mod program_versions;
pub mod programs;
pub mod run_logs;
pub mod runs;
pub mod users;

pub use enums::*;
