//! Retries with exponential backoff and full jitter; `Retry-After` wins when the registry says.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::RegistryError;

/// How often and how patiently to retry.
#[derive(Clone, Debug)]
pub struct Backoff {
    /// Attempts after the first.
    pub retries: u32,
    /// First delay.
    pub base: Duration,
    /// Longest delay (also caps `Retry-After`).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { retries: 5, base: Duration::from_millis(200), max: Duration::from_secs(30) }
    }
}

static JITTER: AtomicU64 = AtomicU64::new(0x2545_F491_4F6C_DD1D);

fn jitter_fraction() -> f64 {
    // xorshift over a shared state: cheap, lock-free, good enough to spread retries.
    let mut x = JITTER.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    JITTER.store(x, Ordering::Relaxed);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

impl Backoff {
    /// Delay before retry number `attempt` (0-based): half fixed, half jitter.
    pub fn delay(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        if let Some(h) = hint {
            return h.min(self.max);
        }
        let exp = self.base.saturating_mul(1u32 << attempt.min(16)).min(self.max);
        exp / 2 + exp.mul_f64(jitter_fraction() / 2.0)
    }

    /// Runs `op` until it succeeds, fails permanently, or retries run out.
    pub async fn run<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) => match e.retry_hint() {
                    Some(hint) if attempt < self.retries => {
                        let d = self.delay(attempt, hint);
                        tracing::debug!(what, attempt, delay_ms = d.as_millis() as u64, error = %e, "retrying");
                        super::RETRIES.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(d).await;
                        attempt += 1;
                    }
                    _ => return Err(e),
                },
            }
        }
    }
}

/// Parses `Retry-After` seconds (HTTP dates are rare from registries and fall back to backoff).
pub fn parse_retry_after(v: Option<&reqwest::header::HeaderValue>) -> Option<Duration> {
    v?.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_honour_retry_after() {
        let b = Backoff { retries: 3, base: Duration::from_millis(100), max: Duration::from_secs(2) };
        for attempt in 0..6 {
            let d = b.delay(attempt, None);
            let exp = Duration::from_millis(100 * (1 << attempt)).min(Duration::from_secs(2));
            assert!(d >= exp / 2 && d <= exp, "attempt {attempt}: {d:?} not in [{:?}, {exp:?}]", exp / 2);
        }
        assert_eq!(b.delay(0, Some(Duration::from_secs(1))), Duration::from_secs(1));
        assert_eq!(b.delay(0, Some(Duration::from_secs(100))), Duration::from_secs(2));
    }
}
