//! When and how long to wait before trying a registry request again: capped exponential backoff
//! with jitter, `Retry-After` (seconds or HTTP-date) honoured up to a cap.

use std::time::{Duration, SystemTime};

/// Network behaviour, from settings.
#[derive(Clone, Debug)]
pub struct NetworkOptions {
    pub connect_timeout: Duration,
    /// Longest silence allowed while waiting for a response or reading a body.
    pub read_timeout: Duration,
    /// Tries per request, the first included.
    pub tries: u32,
    /// First backoff; doubles per try.
    pub base_delay: Duration,
    /// Cap on any single wait, `Retry-After` included.
    pub max_delay: Duration,
    /// Times a broken blob download is resumed with a Range request.
    pub resumes: u32,
    /// The most a run waits between tries, all its requests together (`PKG_MAX_WAIT`): past
    /// it, a failure is final.
    pub max_wait: Duration,
    /// How long an endpoint of a chain (a mirror) that failed a request after all its tries is
    /// skipped before requests try it first again (`PKG_MIRROR_COOLDOWN`).
    pub mirror_cooldown: Duration,
    /// A CA file of the user's (`ca_file`) and its certificates, trusted beside the bundled
    /// and the system's roots.
    pub ca: Option<(
        std::path::PathBuf,
        std::sync::Arc<Vec<ureq::tls::Certificate<'static>>>,
    )>,
    /// The proxies from the environment.
    pub proxies: super::network::Proxies,
    /// `--offline`: no request leaves the machine; each says what it wanted instead.
    pub offline: bool,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        NetworkOptions {
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(90),
            tries: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            resumes: 10,
            max_wait: Duration::from_secs(300),
            mirror_cooldown: Duration::from_secs(30),
            ca: None,
            proxies: super::network::Proxies::default(),
            offline: false,
        }
    }
}

/// 408, 429 and 5xx are worth another try (501 and 505 are not: they will not change).
pub fn retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status) && status != 501 && status != 505
}

/// The time a run has spent waiting between tries, against its budget
/// ([`NetworkOptions::max_wait`]); shared by every request of the run.
#[derive(Debug, Default)]
pub struct Waited {
    millis: std::sync::atomic::AtomicU64,
}

impl Waited {
    /// Takes `wait` from the budget `max`: false (and nothing taken) when it would go past it.
    pub fn take(&self, wait: Duration, max: Duration) -> bool {
        use std::sync::atomic::Ordering;
        let want = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let max = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        self.millis
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |spent| {
                spent.checked_add(want).filter(|total| *total <= max)
            })
            .is_ok()
    }
}

/// `Retry-After: 120` or `Retry-After: Wed, 21 Oct 2015 07:28:00 GMT`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The wait before try number `attempt + 1` (`attempt` counts from 0).
pub fn delay(opts: &NetworkOptions, attempt: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(ra) = retry_after {
        return ra.min(opts.max_delay);
    }
    let exp = opts
        .base_delay
        .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX));
    let capped = exp.min(opts.max_delay);
    // Jitter: between 50% and 100% of the backoff, so clients that failed together spread out.
    capped.mul_f64(0.5 + jitter() / 2.0)
}

/// A number in `[0, 1)` that differs from one call to the next, in this process and across
/// processes started together: a counter hashed with std's randomly keyed SipHash (no clock
/// involved, so a coarse clock cannot make every client wait alike).
fn jitter() -> f64 {
    use std::hash::BuildHasher as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    let bits = std::hash::RandomState::new().hash_one(n) >> 11;
    // 53 random bits: exactly representable, below 1.
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after_up_to_the_cap() {
        let opts = NetworkOptions::default();
        let d0 = delay(&opts, 0, None);
        assert!(
            d0 >= Duration::from_millis(125) && d0 <= Duration::from_millis(250),
            "{d0:?}"
        );
        let d3 = delay(&opts, 3, None);
        assert!(
            d3 >= Duration::from_millis(1000) && d3 <= Duration::from_millis(2000),
            "{d3:?}"
        );
        assert!(delay(&opts, 40, None) <= opts.max_delay);
        assert_eq!(
            delay(&opts, 0, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            delay(&opts, 0, Some(Duration::from_secs(3600))),
            opts.max_delay
        );
    }

    #[test]
    fn jittered_delays_differ_from_one_try_to_the_next() {
        let opts = NetworkOptions::default();
        let delays: Vec<Duration> = (0..256).map(|_| delay(&opts, 2, None)).collect();
        let base = opts.base_delay * 4;
        for d in &delays {
            assert!(
                *d >= base / 2 && *d <= base,
                "{d:?} outside [{:?}, {base:?}]",
                base / 2
            );
        }
        let mut distinct = delays.clone();
        distinct.sort();
        distinct.dedup();
        // Taken back to back, as clients that failed together take them: with a clock-based
        // jitter many would be equal (or all, on a coarse clock). Nanosecond durations over a
        // 500 ms range almost never collide by chance.
        assert!(
            distinct.len() >= 250,
            "only {} distinct delays of 256: {delays:?}",
            distinct.len()
        );
        let low = delays.iter().filter(|d| **d < base * 3 / 4).count();
        assert!(
            (64..=192).contains(&low),
            "{low} of 256 delays in the lower half of the jitter range"
        );
    }

    #[test]
    fn the_waiting_budget_is_shared_and_never_overdrawn() {
        let waited = Waited::default();
        let max = Duration::from_secs(10);
        assert!(waited.take(Duration::from_secs(6), max));
        assert!(!waited.take(Duration::from_secs(5), max));
        assert!(waited.take(Duration::from_secs(4), max));
        assert!(!waited.take(Duration::from_millis(1), max));
    }

    #[test]
    fn which_statuses_are_retried() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 416, 501, 505] {
            assert!(!retryable_status(s), "{s}");
        }
    }
}
