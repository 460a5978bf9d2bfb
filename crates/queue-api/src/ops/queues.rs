//! Queue-level operations: create, delete, metadata and access policies (ACL).

use hematite_engine::{AccessPolicy, Created, Metadata};
use hematite_queue_protocol::error::ErrorCode;
use hematite_queue_protocol::names;
use hematite_queue_protocol::xml::{self, SignedIdentifier};

use crate::api::Call;
use crate::auth::{to_offset, to_timestamp};
use crate::error::ApiError;
use crate::http1::{Request, Response};
use crate::ops::service::xml_error;

const META_PREFIX: &str = "x-ms-meta-";

/// Reads `x-ms-meta-*` headers, keeping each name's case.
///
/// A header named exactly `x-ms-meta` is ignored: Python 12.x sends one holding a dict repr next
/// to the real pairs on Create Queue (`docs/compatibility.md`). It is still signed, like any header.
pub fn metadata_from_headers(req: &Request) -> Result<Metadata, ApiError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut size = 0usize;
    for (k, v) in req.headers() {
        let Some(head) = k.get(..META_PREFIX.len()) else {
            continue;
        };
        if !head.eq_ignore_ascii_case(META_PREFIX) {
            continue;
        }
        let name = &k[META_PREFIX.len()..];
        if name.is_empty() {
            return Err(ApiError::new(ErrorCode::EmptyMetadataKey));
        }
        if !names::is_valid_metadata_name(name) {
            return Err(ApiError::new(ErrorCode::InvalidMetadata).detail("MetadataName", name));
        }
        if pairs.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(ApiError::new(ErrorCode::InvalidMetadata)
                .message("Metadata names must be unique, compared case-insensitively.")
                .detail("MetadataName", name));
        }
        size += name.len() + v.len();
        pairs.push((name.to_owned(), v.to_owned()));
    }
    if size > names::MAX_METADATA_BYTES {
        return Err(ApiError::new(ErrorCode::MetadataTooLarge));
    }
    Ok(Metadata(pairs))
}

pub async fn create(call: &Call<'_>) -> Result<Response, ApiError> {
    let metadata = metadata_from_headers(call.req)?;
    match call.engine.create_queue(call.queue(), metadata).await? {
        Created::New => Ok(Response::new(201)),
        Created::AlreadyIdentical => Ok(Response::new(204)),
    }
}

pub async fn delete(call: &Call<'_>) -> Result<Response, ApiError> {
    call.engine.delete_queue(call.queue()).await?;
    Ok(Response::new(204))
}

pub async fn get_metadata(call: &Call<'_>) -> Result<Response, ApiError> {
    let info = call.engine.queue_info(call.queue()).await?;
    let mut resp = Response::new(200).header(
        "x-ms-approximate-messages-count",
        info.message_count.to_string(),
    );
    for (k, v) in info.metadata.0 {
        resp.push_header(format!("{META_PREFIX}{k}"), v);
    }
    Ok(resp)
}

pub async fn set_metadata(call: &Call<'_>) -> Result<Response, ApiError> {
    let metadata = metadata_from_headers(call.req)?;
    call.engine.set_metadata(call.queue(), metadata).await?;
    Ok(Response::new(204))
}

pub async fn get_acl(call: &Call<'_>) -> Result<Response, ApiError> {
    let policies = call.engine.access_policies(call.queue()).await?;
    let ids: Vec<SignedIdentifier> = policies
        .into_iter()
        .map(|p| SignedIdentifier {
            id: p.id,
            start: p.start.map(to_offset),
            expiry: p.expiry.map(to_offset),
            permission: p.permissions,
        })
        .collect();
    Ok(Response::new(200).xml(xml::write_signed_identifiers(&ids)))
}

pub async fn set_acl(call: &Call<'_>) -> Result<Response, ApiError> {
    let ids = xml::parse_signed_identifiers(&call.req.body).map_err(xml_error)?;
    let policies = ids
        .into_iter()
        .map(|s| AccessPolicy {
            id: s.id,
            start: s.start.map(to_timestamp),
            expiry: s.expiry.map(to_timestamp),
            permissions: s.permission,
        })
        .collect();
    call.engine
        .set_access_policies(call.queue(), policies)
        .await?;
    Ok(Response::new(204))
}
