//! The Azure Queue Storage REST front.
//!
//! It translates HTTP requests into [`hematite_engine::Engine`] calls and engine answers into
//! Azure's exact responses. It never touches a store. The wire details (XML, signing, error codes)
//! live in `hematite-queue-protocol`; this crate owns the request pipeline.
//!
//! - [`server::serve`]: the accept loop (the entry point; tests run it on port 0).
//! - [`http1`]: the HTTP/1.1 connection handling (from `hematite-net`), which keeps
//!   header-name case.
//! - [`api`]: the front door that routes, authenticates and dispatches one request.
//! - [`routing`], [`auth`], [`oauth`], [`cors`], [`params`], [`error`]: the pipeline's steps.
//! - [`ops`]: one module per resource family with the operation handlers.

#![forbid(unsafe_code)]

pub mod accounts;
pub mod api;
pub mod auth;
pub mod cors;
pub mod error;
pub mod oauth;
pub mod ops;
pub mod params;
pub mod properties;
pub mod routing;
pub mod server;

pub use accounts::{Account, Accounts};
pub use api::{Options, QueueApi};
pub use hematite_net::http1;
pub use server::{serve, serve_with};
