//! Account-level operations: List Queues, Get/Set Service Properties, Get Service Stats.

use hematite_queue_protocol::auth::sas::DelegationKey;
use hematite_queue_protocol::datetime;
use hematite_queue_protocol::error::ErrorCode;
use hematite_queue_protocol::version::ApiVersion;
use hematite_queue_protocol::xml::{self, ListQueuesPage, ListedQueue};

use crate::api::Call;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http1::Response;
use crate::ops::within_budget;
use crate::params::parse_int;
use crate::properties;

const MAX_LIST_RESULTS: i64 = 5000;

pub async fn list_queues(call: &Call<'_>) -> Result<Response, ApiError> {
    let q = call.query;
    let account = &call.target.account;
    let prefix = q.get("prefix");
    let marker = q.get("marker").filter(|m| !m.is_empty());
    let max = match q.get("maxresults") {
        None => MAX_LIST_RESULTS,
        Some(raw) => {
            let v = parse_int("maxresults", raw)?;
            if v < 1 {
                return Err(ApiError::out_of_range_query(
                    "maxresults",
                    raw,
                    1,
                    i64::from(i32::MAX),
                ));
            }
            v.min(MAX_LIST_RESULTS)
        }
    };
    let mut with_metadata = false;
    if let Some(include) = q.get("include") {
        for part in include.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part.eq_ignore_ascii_case("metadata") {
                with_metadata = true;
            } else {
                return Err(ApiError::invalid_query("include", include, None));
            }
        }
    }
    // Markers are `/{account}/{first queue of the next page}`, the service's own shape.
    let start_at = match marker {
        None => None,
        Some(m) => {
            let name = m
                .strip_prefix('/')
                .and_then(|r| r.strip_prefix(account.as_str()))
                .and_then(|r| r.strip_prefix('/'))
                .filter(|n| !n.is_empty() && !n.contains('/'))
                .ok_or_else(|| {
                    ApiError::new(ErrorCode::InvalidMarker)
                        .detail("QueryParameterName", "marker")
                        .detail("QueryParameterValue", m)
                })?;
            Some(name)
        }
    };
    let endpoint = service_endpoint(call);
    // Room for the page while the answer is made and for the answer: a listed queue takes
    // about 150 bytes of XML, and its metadata twice what it holds; 2 KiB of metadata per
    // queue is a generous guess, and a larger page gets a second try at its actual size.
    let per_queue = if with_metadata { 2 * 2048 + 320 } else { 320 };
    within_budget(call, max as usize * per_queue, || async {
        let page = call
            .engine
            .list_queues(account, prefix.unwrap_or_default(), start_at, max as usize)
            .await?;
        let next_marker = page
            .next
            .as_ref()
            .map(|n| format!("/{account}/{n}"))
            .unwrap_or_default();
        let queues = page
            .queues
            .iter()
            .map(|s| ListedQueue {
                name: &s.name,
                metadata: with_metadata.then_some(s.metadata.0.as_slice()),
            })
            .collect();
        let body = xml::write_list_queues(
            &ListQueuesPage {
                service_endpoint: &endpoint,
                prefix,
                marker,
                max_results: Some(max as u32),
                queues,
                next_marker: &next_marker,
            },
            call.version < ApiVersion::V2013_08_15,
        );
        Ok(Response::new(200).xml(body))
    })
    .await
}

/// The account's base URL as the client addressed it.
fn service_endpoint(call: &Call<'_>) -> String {
    let host = call.req.header("Host").unwrap_or("127.0.0.1:10001");
    if call.target.path_style {
        format!("http://{host}/{}", call.target.account)
    } else {
        format!("http://{host}/")
    }
}

pub async fn get_properties(call: &Call<'_>) -> Result<Response, ApiError> {
    let props = properties::load(call.engine, &call.target.account).await?;
    let legacy = call.version < ApiVersion::V2013_08_15;
    Ok(Response::new(200).xml(xml::write_service_properties(&props, legacy)))
}

pub async fn set_properties(call: &Call<'_>) -> Result<Response, ApiError> {
    let legacy = call.version < ApiVersion::V2013_08_15;
    let patch = xml::parse_service_properties(&call.req.body, legacy).map_err(xml_error)?;
    properties::change(call.engine, &call.target.account, &patch).await?;
    Ok(Response::new(202))
}

pub fn get_stats(call: &Call<'_>) -> Result<Response, ApiError> {
    if !call.target.secondary {
        // The service answers stats only on the secondary endpoint (Microsoft's Get Queue Service Stats page).
        return Err(ApiError::invalid_query("comp", "stats", None).message(
            "Get Service Stats is served only on the secondary endpoint ({account}-secondary).",
        ));
    }
    Ok(Response::new(200).xml(xml::write_service_stats("live", Some(call.now))))
}

/// The longest a user delegation key may live.
const MAX_DELEGATION: time::Duration = time::Duration::days(7);

/// Get User Delegation Key: a key for the bearer caller, valid from `Start` (default now) to
/// `Expiry` (at most seven days ahead), with which they sign user delegation SAS tokens. The
/// key is derived from the account key and its own fields, so nothing is stored.
pub fn get_user_delegation_key(call: &Call<'_>) -> Result<Response, ApiError> {
    let Principal::Bearer(identity) = call.principal else {
        return Err(ApiError::auth_failed(
            "Only authentication scheme Bearer is supported",
        ));
    };
    let info = xml::parse_key_info(&call.req.body).map_err(xml_error)?;
    let bad_value = |v: &str| {
        ApiError::new(ErrorCode::InvalidXmlNodeValue)
            .detail("XmlNodeName", v)
            .detail("XmlNodeValue", v)
    };
    let expiry = datetime::parse_iso8601(&info.expiry).ok_or_else(|| bad_value(&info.expiry))?;
    let start = match &info.start {
        Some(s) => datetime::parse_iso8601(s).ok_or_else(|| bad_value(s))?,
        None => call.now,
    };
    if expiry > call.now + MAX_DELEGATION || expiry <= start || expiry <= call.now {
        return Err(bad_value(&info.expiry));
    }
    let key = DelegationKey {
        object_id: identity.object_id.clone(),
        tenant_id: identity.tenant_id.clone(),
        start: datetime::format_iso8601_seconds(start),
        expiry: datetime::format_iso8601_seconds(expiry),
        service: "q".into(),
        version: call.version.to_string(),
        delegated_tenant_id: info.delegated_user_tid,
    };
    let signing_key = call
        .account
        .signing_keys
        .first()
        .ok_or_else(|| ApiError::new(ErrorCode::InternalError))?;
    let value = key.value(signing_key);
    Ok(Response::new(200).xml(xml::write_user_delegation_key(&key, &value)))
}

pub fn xml_error(e: xml::XmlError) -> ApiError {
    let err = ApiError::new(e.code());
    match &e {
        xml::XmlError::MissingNode(n) => err.detail("XmlNodeName", *n),
        xml::XmlError::InvalidValue(n) => err.detail("XmlNodeName", n.clone()),
        xml::XmlError::Malformed => err.detail("Reason", e.to_string()),
        // A well-formed document breaking a document rule (too many ACL or CORS entries, CORS
        // settings over 2 KiB): the service names no position and no reason.
        xml::XmlError::Invalid(_) => err
            .detail("LineNumber", "0")
            .detail("LinePosition", "0")
            .detail("Reason", ""),
    }
}
