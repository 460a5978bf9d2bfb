//! Where an account's service properties live: an account document in the engine, holding the
//! complete properties as the protocol crate's own XML, so no second serialization is needed.

use hematite_engine::Engine;
use hematite_queue_protocol::xml::{self, ServiceProperties, ServicePropertiesPatch};

use hematite_queue_protocol::error::ErrorCode;

use crate::error::ApiError;

const DOCUMENT: &str = "queue-service-properties";

/// Attempts at a change before giving up: each fails only when another writer changed the
/// document between this one's read and write.
const ATTEMPTS: usize = 8;

pub async fn load(engine: &Engine, account: &str) -> Result<ServiceProperties, ApiError> {
    Ok(read(engine, account).await?.0)
}

/// The properties, and the stored document they were read from.
async fn read(
    engine: &Engine,
    account: &str,
) -> Result<(ServiceProperties, Option<Vec<u8>>), ApiError> {
    let mut props = ServiceProperties::default();
    let doc = engine.account_document(account, DOCUMENT).await?;
    if let Some(doc) = &doc {
        // Written by `change` below, so it parses; a failure means the stored copy is damaged.
        let patch = xml::parse_service_properties(doc, false).map_err(|e| {
            tracing::error!(account, error = ?e, "stored service properties do not parse");
            ApiError::new(ErrorCode::InternalError)
        })?;
        props.apply(patch);
    }
    Ok((props, doc))
}

/// Applies `patch` to the stored properties: read, patched, written back only if nobody
/// wrote in between (nodes sharing a store set properties at once), else read again.
pub async fn change(
    engine: &Engine,
    account: &str,
    patch: &ServicePropertiesPatch,
) -> Result<(), ApiError> {
    for _ in 0..ATTEMPTS {
        let (mut props, was) = read(engine, account).await?;
        props.apply(patch.clone());
        let doc = xml::write_service_properties(&props, false);
        if engine
            .swap_account_document(account, DOCUMENT, was, doc.into_bytes())
            .await?
        {
            return Ok(());
        }
    }
    tracing::warn!(account, "service properties kept changing under this write");
    Err(ApiError::new(ErrorCode::ServerBusy))
}
