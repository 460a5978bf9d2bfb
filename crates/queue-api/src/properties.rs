//! Where an account's service properties live: an account document in the engine, holding the
//! complete properties as the protocol crate's own XML, so no second serialization is needed.

use hematite_engine::Engine;
use hematite_queue_protocol::xml::{self, ServiceProperties};

use crate::error::ApiError;

const DOCUMENT: &str = "queue-service-properties";

pub async fn load(engine: &Engine, account: &str) -> Result<ServiceProperties, ApiError> {
    let mut props = ServiceProperties::default();
    if let Some(doc) = engine.account_document(account, DOCUMENT).await? {
        // Written by `save` below, so it parses; a failure means the stored copy is damaged.
        let patch = xml::parse_service_properties(&doc, false).map_err(|e| {
            tracing::error!(account, error = ?e, "stored service properties do not parse");
            ApiError::new(hematite_queue_protocol::error::ErrorCode::InternalError)
        })?;
        props.apply(patch);
    }
    Ok(props)
}

pub async fn save(
    engine: &Engine,
    account: &str,
    props: &ServiceProperties,
) -> Result<(), ApiError> {
    let doc = xml::write_service_properties(props, false);
    engine
        .set_account_document(account, DOCUMENT, doc.into_bytes())
        .await?;
    Ok(())
}
