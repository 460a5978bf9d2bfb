//! Message operations: put, get (dequeue), peek, update, delete, clear.
//!
//! Ranges and defaults depend on the request's version (Microsoft's Put/Get/Peek/Update/Delete Message pages); the message-text
//! limit counts UTF-8 bytes of the decoded text, as the service does.

use std::borrow::Cow;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hematite_engine::{Message, MessageId, PopReceipt, SendOptions, Ttl};
use hematite_queue_protocol::error::ErrorCode;
use hematite_queue_protocol::version::ApiVersion;
use hematite_queue_protocol::xml::{self, MessageXml};

use crate::api::Call;
use crate::auth::to_offset;
use crate::error::ApiError;
use crate::http1::Response;
use crate::ops::service::xml_error;
use crate::ops::{holding, reserve, within_budget};
use crate::params::parse_int;

const SEVEN_DAYS: i64 = 604_800;
const DEFAULT_GET_VISIBILITY: i64 = 30;

/// Pop receipts travel as URL-safe base64 of the engine's 128-bit token, so no client has to
/// worry about `+`, `/` or `=` in a query string.
pub fn receipt_to_wire(r: PopReceipt) -> String {
    URL_SAFE_NO_PAD.encode(r.0.to_be_bytes())
}

pub fn receipt_from_wire(s: &str) -> Option<PopReceipt> {
    let bytes = URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()?;
    let arr: [u8; 16] = bytes.try_into().ok()?;
    Some(PopReceipt(u128::from_be_bytes(arr)))
}

fn text_limit(v: ApiVersion) -> usize {
    if v >= ApiVersion::V2011_08_18 {
        65_536
    } else {
        8_192
    }
}

/// The decoded `MessageText` of a body, held to the size limit.
fn message_text(call: &Call<'_>) -> Result<String, ApiError> {
    let text = xml::parse_message_text(&call.req.body).map_err(xml_error)?;
    let limit = text_limit(call.version);
    if text.len() > limit {
        return Err(ApiError::body_too_large(limit));
    }
    Ok(text)
}

fn body_string(m: &Message) -> Cow<'_, str> {
    // Bodies arrive through this front as UTF-8 text; a lossy view only matters for bodies some
    // other front stored as bytes.
    match std::str::from_utf8(&m.body) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(&m.body),
    }
}

pub async fn put(call: &Call<'_>) -> Result<Response, ApiError> {
    let q = call.query;
    let v = call.version;
    let visibility = q.int_in("visibilitytimeout", 0, SEVEN_DAYS)?.unwrap_or(0);
    let ttl = match q.get("messagettl") {
        None => Ttl::After(Duration::from_secs(SEVEN_DAYS as u64)),
        Some(raw) => {
            let t = parse_int("messagettl", raw)?;
            if v >= ApiVersion::V2017_07_29 {
                if t == -1 {
                    Ttl::Never
                } else if t >= 1 && t <= i64::from(i32::MAX) {
                    Ttl::After(Duration::from_secs(t as u64))
                } else {
                    return Err(ApiError::invalid_query(
                        "messagettl",
                        raw,
                        Some("Value must be greater than or equal to 1, or -1 to indicate an infinite TTL."),
                    ));
                }
            } else if (1..=SEVEN_DAYS).contains(&t) {
                Ttl::After(Duration::from_secs(t as u64))
            } else {
                return Err(ApiError::out_of_range_query(
                    "messagettl",
                    raw,
                    1,
                    SEVEN_DAYS,
                ));
            }
        }
    };
    if let Ttl::After(d) = ttl {
        if visibility as u64 >= d.as_secs() {
            return Err(ApiError::invalid_query(
                "visibilitytimeout",
                q.get("visibilitytimeout").unwrap_or_default(),
                Some("messagettl must be greater than visibilitytimeout."),
            ));
        }
    }
    let text = message_text(call)?;
    let m = call
        .engine
        .send(
            call.queue(),
            text.into_bytes(),
            SendOptions {
                visibility_delay: Duration::from_secs(visibility as u64),
                ttl,
            },
        )
        .await?;
    if v < ApiVersion::V2016_05_31 {
        return Ok(Response::new(201));
    }
    let id = m.id.to_string();
    let receipt = receipt_to_wire(m.receipt);
    let body = xml::write_messages_list(&[MessageXml {
        message_id: &id,
        insertion_time: to_offset(m.inserted_at),
        expiration_time: to_offset(m.expires_at),
        pop_receipt: Some(&receipt),
        time_next_visible: Some(to_offset(m.visible_at)),
        dequeue_count: None,
        message_text: None,
    }]);
    Ok(Response::new(201).xml(body))
}

fn count(call: &Call<'_>) -> Result<usize, ApiError> {
    Ok(call.query.int_in("numofmessages", 1, 32)?.unwrap_or(1) as usize)
}

pub async fn get(call: &Call<'_>) -> Result<Response, ApiError> {
    let n = count(call)?;
    let max_vt = if call.version >= ApiVersion::V2011_08_18 {
        SEVEN_DAYS
    } else {
        7_200
    };
    let vt = call
        .query
        .int_in("visibilitytimeout", 1, max_vt)?
        .unwrap_or(DEFAULT_GET_VISIBILITY);
    let reservation = reserve(call, n * max_message_xml(call.version)).await?;
    let got = call
        .engine
        .receive(call.queue(), n, Duration::from_secs(vt as u64))
        .await?;
    Ok(holding(
        Response::new(200).xml(messages_xml(&got, true)),
        reservation,
    ))
}

pub async fn peek(call: &Call<'_>) -> Result<Response, ApiError> {
    let n = count(call)?;
    // Room for the messages while the answer is made and for the answer: 64 KiB of text
    // twice per message. Only text that escapes to more (`&amp;`…) needs a second try.
    within_budget(call, n * 2 * text_limit(call.version), || async {
        let got = call.engine.peek(call.queue(), n).await?;
        Ok(Response::new(200).xml(messages_xml(&got, false)))
    })
    .await
}

/// Get leases what it returns, so room is reserved before, for the most the answer can take:
/// per `QueueMessage`: its text escaped at worst five bytes per byte
/// (`&amp;`, `&#xD;`), plus the other elements.
fn max_message_xml(v: ApiVersion) -> usize {
    text_limit(v) * 5 + 1024
}

/// The `QueueMessagesList` of Get Messages (`leased`: with receipt and next-visible time) or
/// Peek Messages (without them).
fn messages_xml(got: &[Message], leased: bool) -> String {
    let rows: Vec<(String, String, Cow<'_, str>)> = got
        .iter()
        .map(|m| (m.id.to_string(), receipt_to_wire(m.receipt), body_string(m)))
        .collect();
    let list: Vec<MessageXml<'_>> = got
        .iter()
        .zip(&rows)
        .map(|(m, (id, receipt, text))| MessageXml {
            message_id: id,
            insertion_time: to_offset(m.inserted_at),
            expiration_time: to_offset(m.expires_at),
            pop_receipt: leased.then_some(receipt.as_str()),
            time_next_visible: leased.then(|| to_offset(m.visible_at)),
            dequeue_count: Some(u64::from(m.dequeue_count)),
            message_text: Some(text),
        })
        .collect();
    xml::write_messages_list(&list)
}

pub async fn clear(call: &Call<'_>) -> Result<Response, ApiError> {
    call.engine.clear_messages(call.queue()).await?;
    Ok(Response::new(204))
}

/// The message id from the path and the receipt from the query, both checked.
fn id_and_receipt(call: &Call<'_>) -> Result<(MessageId, PopReceipt), ApiError> {
    let raw = call
        .query
        .get("popreceipt")
        .ok_or_else(|| ApiError::missing_query("popreceipt"))?;
    let receipt = receipt_from_wire(raw).ok_or_else(|| {
        ApiError::invalid_query("popreceipt", raw, Some("invalid receipt format"))
    })?;
    let id = match &call.target.resource {
        crate::routing::Resource::Message(_, id) => id.parse::<MessageId>().ok(),
        _ => None,
    };
    // An id we never issued cannot name a message: the service answers that as not found.
    let id = id.ok_or_else(|| ApiError::new(ErrorCode::MessageNotFound))?;
    Ok((id, receipt))
}

pub async fn delete(call: &Call<'_>) -> Result<Response, ApiError> {
    let (id, receipt) = id_and_receipt(call)?;
    call.engine
        .delete_message(call.queue(), id, receipt)
        .await?;
    Ok(Response::new(204))
}

pub async fn update(call: &Call<'_>) -> Result<Response, ApiError> {
    let vt_raw = call.query.get("visibilitytimeout");
    let (id, receipt) = id_and_receipt(call)?;
    if vt_raw.is_none() {
        return Err(ApiError::missing_query("visibilitytimeout"));
    }
    let vt = call
        .query
        .int_in("visibilitytimeout", 0, SEVEN_DAYS)?
        .unwrap_or(0);
    let body = if call.req.body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(message_text(call)?.into_bytes())
    };
    let m = call
        .engine
        .update_message(
            call.queue(),
            id,
            receipt,
            Duration::from_secs(vt as u64),
            body,
        )
        .await?;
    Ok(Response::new(204)
        .header("x-ms-popreceipt", receipt_to_wire(m.receipt))
        .header(
            "x-ms-time-next-visible",
            hematite_queue_protocol::datetime::format_rfc1123(to_offset(m.visible_at)),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_round_trip_and_reject_garbage() {
        let r = PopReceipt(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let w = receipt_to_wire(r);
        assert_eq!(w.len(), 22);
        assert!(w
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(receipt_from_wire(&w), Some(r));
        assert_eq!(receipt_from_wire("not a receipt"), None);
        assert_eq!(receipt_from_wire("AAAA"), None);
    }
}
