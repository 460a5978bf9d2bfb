//! Operation handlers, one module per resource family: the account (`service`), a queue
//! (`queues`) and its messages (`messages`). Each handler parses its own parameters and body,
//! calls the engine once or twice, and shapes the Azure response.

pub mod messages;
pub mod queues;
pub mod service;

use hematite_net::budget::Reservation;
use hematite_queue_protocol::error::ErrorCode;

use crate::api::Call;
use crate::error::ApiError;
use crate::http1::Response;

/// Reserves room in the response budget for an answer of at most `max` bytes, before it is
/// produced (and before anything is leased). 503 ServerBusy, which clients retry, when the
/// budget stays spent.
async fn reserve(call: &Call<'_>, max: usize) -> Result<Reservation, ApiError> {
    call.budget.reserve(max).await.ok_or_else(|| {
        ApiError::new(ErrorCode::ServerBusy)
            .message("The server is busy: too many large responses are waiting for their readers.")
    })
}

/// Keeps, until the response is written, the part of the reservation its body takes.
fn holding(mut resp: Response, mut reservation: Reservation) -> Response {
    reservation.shrink_to(resp.body.len());
    resp.reservation = Some(reservation);
    resp
}

/// Produces a response that has no side effects (a peek, a listing) within the budget,
/// without holding anything while it waits for room: reserve `guess` bytes (enough for what
/// production holds too), produce, and keep the answer if it fits or the reservation can grow
/// to it at once; otherwise drop it, wait for its actual size and produce it again.
async fn within_budget<F, Fut>(
    call: &Call<'_>,
    guess: usize,
    produce: F,
) -> Result<Response, ApiError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Response, ApiError>>,
{
    let mut want = guess;
    for _ in 0..3 {
        let mut reservation = reserve(call, want).await?;
        let resp = produce().await?;
        let len = resp.body.len();
        if reservation.try_grow(len, call.budget) {
            return Ok(holding(resp, reservation));
        }
        want = len;
    }
    Err(ApiError::new(ErrorCode::ServerBusy))
}
