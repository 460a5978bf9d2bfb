//! How the store's I/O failures surface as engine [`StoreError`]s.
//!
//! A full disk is `Unavailable` (the front answers 503 ServerBusy, which SDKs retry), as is any
//! request while the store rebuilds itself after an I/O failure; data that fails a check is
//! `Corrupt`; any other I/O error is `Other` (500 InternalError).

use hematite_engine::{StoreError, StoreErrorKind};

pub fn io_to_store_error(e: &std::io::Error) -> StoreError {
    let kind = if is_out_of_space(e) {
        StoreErrorKind::Unavailable
    } else if e.kind() == std::io::ErrorKind::InvalidData {
        StoreErrorKind::Corrupt
    } else {
        StoreErrorKind::Other
    };
    StoreError::new(kind, format!("storage: {e}"))
}

pub fn unavailable() -> StoreError {
    StoreError::new(
        StoreErrorKind::Unavailable,
        "the store is rebuilding itself after an I/O error",
    )
}

fn is_out_of_space(e: &std::io::Error) -> bool {
    // ENOSPC (28) and EDQUOT (122) on Linux; StorageFull where the platform maps it.
    e.kind() == std::io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28 | 122))
}
