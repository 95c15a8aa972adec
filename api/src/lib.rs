//! Playground's server: configuration, database, authentication and
//! authorization, the services, the GraphQL schema and the HTTP surface.
//! `main.rs` is the command line on top of this library.

pub mod app;
pub mod auth;
pub mod authz;
pub mod blobs;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod limits;
pub mod plugins;
pub mod runner;
pub mod server;
pub mod services;
pub mod validation;
