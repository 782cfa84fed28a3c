//! Exponential backoff with jitter, shared by everything that retries
//! (deliveries, model calls).

use std::time::Duration;

/// `base`·2^(attempt−1), ±50% jitter, capped at `cap`.
pub fn backoff(attempt: i32, base: Duration, cap: Duration) -> Duration {
    let exp = base.as_secs_f64() * 2f64.powi(attempt.clamp(1, 16) - 1);
    let jitter = 0.5 + (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
    Duration::from_secs_f64((exp * jitter).min(cap.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let (base, cap) = (Duration::from_millis(500), Duration::from_secs(300));
        for attempt in 1..20 {
            let b = backoff(attempt, base, cap).as_secs_f64();
            let expected = (0.5 * 2f64.powi(attempt.clamp(1, 16) - 1)).min(300.0);
            assert!(b >= (expected * 0.5).min(300.0) - 1e-9 && b <= 300.0, "{attempt}: {b}");
        }
        assert!(backoff(1, base, cap) < Duration::from_secs(1));
    }
}
