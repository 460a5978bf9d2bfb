//! The store's internal error, and how it surfaces as an engine [`StoreError`].
//!
//! A full disk becomes `Unavailable` (the front answers 503 ServerBusy, which SDKs retry), as
//! does any error while the database is being reopened after an I/O failure; detected
//! corruption becomes `Corrupt`; anything else `Other` (500 InternalError).

use hematite_engine::{StoreError, StoreErrorKind};

use crate::codec::DecodeError;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("storage: {0}")]
    Storage(#[from] redb::StorageError),
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Other(String),
    /// The database is closed after an I/O failure and not yet reopened.
    #[error("the database is unavailable after an I/O error; reopening")]
    Unavailable,
}

impl From<DecodeError> for DbError {
    fn from(e: DecodeError) -> Self {
        DbError::Corrupt(e.0.to_owned())
    }
}

macro_rules! via_storage {
    ($($t:ty),*) => {$(
        impl From<$t> for DbError {
            fn from(e: $t) -> Self {
                match e.into() {
                    redb::Error::Corrupted(s) => DbError::Corrupt(s),
                    redb::Error::Io(io) => DbError::Storage(redb::StorageError::Io(io)),
                    redb::Error::PreviousIo => DbError::Storage(redb::StorageError::PreviousIo),
                    other => DbError::Other(other.to_string()),
                }
            }
        }
    )*};
}

via_storage!(
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::DatabaseError,
    redb::SetDurabilityError
);

impl DbError {
    /// Whether the database must be reopened before it can be trusted again.
    pub fn needs_reopen(&self) -> bool {
        matches!(
            self,
            DbError::Storage(redb::StorageError::Io(_) | redb::StorageError::PreviousIo)
        )
    }

    pub fn to_store_error(&self) -> StoreError {
        let kind = match self {
            DbError::Storage(redb::StorageError::Io(e)) if is_out_of_space(e) => {
                StoreErrorKind::Unavailable
            }
            DbError::Storage(redb::StorageError::PreviousIo) | DbError::Unavailable => {
                StoreErrorKind::Unavailable
            }
            DbError::Storage(redb::StorageError::Corrupted(_)) | DbError::Corrupt(_) => {
                StoreErrorKind::Corrupt
            }
            DbError::Storage(_) | DbError::Other(_) => StoreErrorKind::Other,
        };
        StoreError::new(kind, self.to_string())
    }
}

fn is_out_of_space(e: &std::io::Error) -> bool {
    // ENOSPC (28) and EDQUOT (122) on Linux; StorageFull where the platform maps it.
    e.kind() == std::io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28 | 122))
}
