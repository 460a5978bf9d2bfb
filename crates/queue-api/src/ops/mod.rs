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

/// Reserves what a response produced without side effects (a peek, a listing) takes, to keep
/// until it is written. The bytes were made before asking; production is brief, and what is
/// bounded is the time they wait for a slow reader.
async fn hold(call: &Call<'_>, resp: Response) -> Result<Response, ApiError> {
    let reservation = reserve(call, resp.body.len()).await?;
    Ok(holding(resp, reservation))
}
