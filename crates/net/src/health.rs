//! `GET /health` for a load balancer: 200 `{"status":"healthy"}` while a probe of the node's
//! store answers within two seconds, 503 with the reason otherwise (the Service Bus
//! emulator's form). Both fronts answer it, so a node that serves only one of them still has
//! a health check, and a node whose database is unreachable is taken out of rotation.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use crate::http1::{Request, Response};

/// How long the store has to answer.
pub const WITHIN: Duration = Duration::from_secs(2);

/// The answer to a health check, from `probe`'s outcome.
pub async fn answer<E: Display>(
    req: &Request,
    probe: impl Future<Output = Result<(), E>>,
) -> Response {
    if !matches!(req.method(), "GET" | "HEAD") {
        return json(405, r#"{"error":"method not allowed"}"#.to_owned());
    }
    match tokio::time::timeout(WITHIN, probe).await {
        Ok(Ok(())) => json(200, r#"{"status":"healthy"}"#.to_owned()),
        Ok(Err(e)) => json(
            503,
            serde_json::json!({"status": "unhealthy", "error": e.to_string()}).to_string(),
        ),
        Err(_) => json(
            503,
            r#"{"status":"unhealthy","error":"the store did not answer within 2 s"}"#.to_owned(),
        ),
    }
}

fn json(status: u16, body: String) -> Response {
    let mut r = Response::new(status).header("Content-Type", "application/json");
    r.body = body.into_bytes();
    r
}
