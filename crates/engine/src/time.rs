//! The engine's instant type.
//!
//! Milliseconds since the Unix epoch, as a plain integer, so stores can persist it and compare it
//! without a date library. Azure caps expiry at 9999-12-31T23:59:59Z, which is [`Timestamp::NEVER`].

use std::time::Duration;

/// An instant, in milliseconds since 1970-01-01T00:00:00Z.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// 9999-12-31T23:59:59Z: what "never expires" means on the wire.
    pub const NEVER: Timestamp = Timestamp(253_402_300_799_000);
    pub const EPOCH: Timestamp = Timestamp(0);

    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Adds a duration, saturating at [`Timestamp::NEVER`] so a huge TTL cannot overflow.
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        let add = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(add).min(Self::NEVER.0))
    }
}
