//! What every Hematite listener needs to face a hostile network, whatever protocol it speaks.
//!
//! - [`listener::serve`]: the accept loop: TLS handshakes, a connection cap, and shedding of
//!   the idlest or slowest connections when the cap is reached.
//! - [`conns`]: the registry of open connections and what each is doing, which the shedding
//!   decisions read.
//! - [`tls`]: loading a PEM certificate and key into a rustls server configuration, once, for
//!   every listener that serves TLS.
//! - [`http1`]: the HTTP/1.1 server connection (strict framing, deadlines, bounded buffers)
//!   that the HTTP fronts build on.
//! - [`budget`]: the process-wide budget of response bytes, so that many slow readers cannot
//!   pin memory without bound.
//! - [`health`]: `GET /health`, answered from a probe of the node's store.
//! - [`system`]: the file-descriptor limit and the machine's memory, from which defaults are
//!   derived.

#![forbid(unsafe_code)]

pub mod budget;
pub mod conns;
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod http1;
pub mod listener;
pub mod system;
pub mod tls;
