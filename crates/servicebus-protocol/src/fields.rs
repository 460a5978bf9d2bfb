//! Reading and writing the properties every description shares: sparse children read over
//! defaults, values refused with Azure's wording, elements written in order, `CountDetails`.

use hematite_queue_protocol::xml::dom::Element;
use hematite_queue_protocol::xml::writer::push_text;

use std::time::Duration;

use crate::atom::AdminError;
use crate::duration::format_duration;
use crate::queue::{CountDetails, MAX_LOCK, MIN_LOCK};
use crate::COUNTS_NS;

pub(crate) fn boolean(s: &str) -> Option<bool> {
    match s {
        "true" | "1" | "True" => Some(true),
        "false" | "0" | "False" => Some(false),
        _ => None,
    }
}

pub(crate) fn invalid(name: &str, value: &str) -> AdminError {
    AdminError::bad_request(format!(
        "The value '{value}' supplied for property '{name}' is not valid."
    ))
}

/// Reads a sparse description's child `name` with `parse`, leaving `field` as it is when the
/// child is absent.
pub(crate) fn read<T>(
    el: &Element,
    name: &str,
    field: &mut T,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<(), AdminError> {
    if let Some(text) = el.child_text(name) {
        *field = parse(text).ok_or_else(|| invalid(name, text))?;
    }
    Ok(())
}

/// An optional string: empty means unset.
pub(crate) fn read_string(el: &Element, name: &str, field: &mut Option<String>) {
    if let Some(text) = el.child_text(name) {
        *field = (!text.is_empty()).then(|| text.to_owned());
    }
}

/// The root element's name must be `expected`.
pub(crate) fn expect(el: &Element, expected: &str) -> Result<(), AdminError> {
    if el.name == expected {
        return Ok(());
    }
    Err(AdminError::bad_request(format!(
        "Expected a {expected}, not {}.",
        el.name
    )))
}

/// `<name>value</name>`, the value escaped.
pub(crate) fn el(out: &mut String, name: &str, value: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    push_text(out, value);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// `<root xmlns="…connect" xmlns:i="…instance">`: every description's opening.
pub(crate) fn open_description(out: &mut String, root: &str) {
    out.push('<');
    out.push_str(root);
    out.push_str(" xmlns=\"");
    out.push_str(crate::CONNECT_NS);
    out.push_str("\" xmlns:i=\"");
    out.push_str(crate::INSTANCE_NS);
    out.push_str("\">");
}

/// `CountDetails` with its one `d2p1` prefix: the JS SDK finds the prefix by looking for a
/// single `xmlns:` attribute, and older clients index `d2p1:ActiveMessageCount` by name.
pub(crate) fn push_counts(out: &mut String, c: &CountDetails) {
    out.push_str("<CountDetails xmlns:d2p1=\"");
    out.push_str(COUNTS_NS);
    out.push_str("\">");
    for (name, n) in [
        ("ActiveMessageCount", c.active),
        ("DeadLetterMessageCount", c.dead_letter),
        ("ScheduledMessageCount", c.scheduled),
        ("TransferMessageCount", c.transfer),
        ("TransferDeadLetterMessageCount", c.transfer_dead_letter),
    ] {
        out.push_str(&format!("<d2p1:{name}>{n}</d2p1:{name}>"));
    }
    out.push_str("</CountDetails>");
}

/// The counts of an answer's `CountDetails` (for clients); zero where missing.
pub(crate) fn read_counts(el: &Element) -> CountDetails {
    let counts = el.child("CountDetails");
    let count = |name: &str| {
        counts
            .and_then(|c| c.child_text(name)?.parse().ok())
            .unwrap_or(0)
    };
    CountDetails {
        active: count("ActiveMessageCount"),
        dead_letter: count("DeadLetterMessageCount"),
        scheduled: count("ScheduledMessageCount"),
        transfer: count("TransferMessageCount"),
        transfer_dead_letter: count("TransferDeadLetterMessageCount"),
    }
}

// ---- The ranges Azure enforces, shared by the descriptions, with its wording --------------

pub(crate) fn check_lock(lock: Duration) -> Result<(), AdminError> {
    if lock > MAX_LOCK {
        return Err(AdminError::bad_request(
            "The supplied lock time exceeds the allowed maximum of '00:05:00'.",
        ));
    }
    if lock < MIN_LOCK {
        return Err(AdminError::bad_request(
            "The supplied lock time is below the allowed minimum of '00:00:05'.",
        ));
    }
    Ok(())
}

/// A count that must not be zero (MaxDeliveryCount, MaxSizeInMegabytes).
pub(crate) fn check_nonzero(name: &str, n: u64) -> Result<(), AdminError> {
    if n == 0 {
        return Err(invalid(name, "0"));
    }
    Ok(())
}

pub(crate) fn check_ttl(ttl: Duration) -> Result<(), AdminError> {
    if ttl < Duration::from_secs(1) {
        return Err(AdminError::bad_request(
            "The value supplied for DefaultMessageTimeToLive must be at least one second.",
        ));
    }
    Ok(())
}

pub(crate) fn check_duplicate_window(window: Duration) -> Result<(), AdminError> {
    if !(20..=7 * 86_400).contains(&window.as_secs()) {
        return Err(invalid(
            "DuplicateDetectionHistoryTimeWindow",
            &format_duration(window),
        ));
    }
    Ok(())
}

pub(crate) fn check_auto_delete(idle: Duration) -> Result<(), AdminError> {
    if idle < Duration::from_secs(300) {
        return Err(AdminError::bad_request(
            "The value supplied for AutoDeleteOnIdle must be at least five minutes.",
        ));
    }
    Ok(())
}

pub(crate) fn check_max_message_kb(kb: u64) -> Result<(), AdminError> {
    if !(1..=102_400).contains(&kb) {
        return Err(invalid("MaxMessageSizeInKilobytes", &kb.to_string()));
    }
    Ok(())
}
