//! Timeouts and the retry policy.
//!
//! Transient failures (a 5xx such as `ServerBusy`, a 408, a timeout, a dropped connection) are
//! retried with exponential backoff and jitter, so many clients hit by the same outage do not
//! come back in lockstep. A 4xx other than 408 is the caller's mistake or a real state
//! (`QueueNotFound`) and is returned at once.

use std::time::Duration;

use rand::Rng;

/// How a client sends and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Retries after the first attempt; 0 disables retrying.
    pub max_retries: u32,
    /// The delay before the first retry; each further retry doubles it.
    pub base_delay: Duration,
    /// The cap on one delay (and on a server's `Retry-After`).
    pub max_delay: Duration,
    /// The limit on one attempt, from sending to the last byte of the answer.
    pub timeout: Duration,
}

impl Default for ClientOptions {
    /// 3 retries from 0.5 s up to 30 s; 30 s per attempt (the service's own cap on a queue
    /// operation).
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
        }
    }
}

impl ClientOptions {
    /// The delay before retry number `retry` (0 for the first): `base · 2^retry`, capped at
    /// `max_delay`, then drawn uniformly from its upper half ("equal jitter": spread out, yet
    /// never much shorter than the schedule). A server's `Retry-After` is honoured when longer,
    /// up to `max_delay`.
    pub fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.min(31)))
            .min(self.max_delay);
        let half = exp / 2;
        let jitter = if half.is_zero() {
            Duration::ZERO
        } else {
            rand::thread_rng().gen_range(Duration::ZERO..=half)
        };
        let delay = half + jitter;
        match retry_after {
            Some(ra) => delay.max(ra.min(self.max_delay)),
            None => delay,
        }
    }
}

/// Whether an answer with this status is worth another try.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    status == 408 || (500..600).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let o = ClientOptions {
            max_retries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        };
        for _ in 0..100 {
            let d0 = o.backoff(0, None);
            assert!((50..=100).contains(&d0.as_millis()), "{d0:?}");
            let d2 = o.backoff(2, None);
            assert!((200..=400).contains(&d2.as_millis()), "{d2:?}");
            let d9 = o.backoff(9, None);
            assert!((500..=1000).contains(&d9.as_millis()), "{d9:?}");
            assert!(o.backoff(u32::MAX, None) <= Duration::from_secs(1));
        }
        assert_eq!(
            o.backoff(0, Some(Duration::from_millis(700))),
            Duration::from_millis(700)
        );
        assert_eq!(
            o.backoff(0, Some(Duration::from_secs(60))),
            Duration::from_secs(1)
        );
        let zero = ClientOptions {
            base_delay: Duration::ZERO,
            ..o
        };
        assert_eq!(zero.backoff(3, None), Duration::ZERO);
    }

    #[test]
    fn only_5xx_and_408_retry() {
        for s in [408, 500, 502, 503, 504] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [200, 201, 204, 400, 403, 404, 409, 413, 429] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }
}
