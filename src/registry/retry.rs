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
        }
    }
}

/// 408, 429 and 5xx are worth another try (501 and 505 are not: they will not change).
pub fn retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status) && status != 501 && status != 505
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
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let fraction = 0.5 + f64::from(nanos % 1000) / 2000.0;
    capped.mul_f64(fraction)
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
    fn which_statuses_are_retried() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 416, 501, 505] {
            assert!(!retryable_status(s), "{s}");
        }
    }
}
