//! The services: what the API can do, as plain async functions over the
//! [`App`](crate::app::App) and the caller. GraphQL resolvers are thin
//! wrappers around these; every function checks authorization first.

pub mod audit;
pub mod credentials;
pub mod environments;
pub mod pagination;
pub mod programs;
pub mod runs;
pub mod sharing;
pub mod users;
