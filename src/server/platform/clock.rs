use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// The source of "now" for everything that compares times: wall-clock time for what is stored
/// or exchanged (token expiry, flow lifetimes), monotonic time for what only this process
/// measures (rate-limit windows, how recently a refresh finished).
///
/// Injected through `AppState` so tests can move time past an expiry without sleeping;
/// `clippy.toml` forbids reading either system clock anywhere else.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    fn now(&self) -> SystemTime;
    /// Never goes backwards; meaningful only within this process.
    fn monotonic(&self) -> Instant;
}

/// Seconds since the Unix epoch, as stored in the database (0 before it, `i64::MAX` past
/// the year 292 billion).
pub fn to_unix(time: SystemTime) -> i64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The time `secs` seconds after the Unix epoch (a negative count is the epoch).
pub fn from_unix(secs: i64) -> SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // The one sanctioned read of the system clock.
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    #[allow(clippy::disallowed_methods)] // The one sanctioned read of the monotonic clock.
    fn monotonic(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that stands still until a test moves it; both of its readings move together.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<(SystemTime, Instant)>>,
}

impl ManualClock {
    #[allow(clippy::disallowed_methods)] // Any starting instant will do; only differences count.
    pub fn new(start: SystemTime) -> Self {
        Self {
            now: Arc::new(Mutex::new((start, Instant::now()))),
        }
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        now.0 += by;
        now.1 += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.now.lock().unwrap_or_else(PoisonError::into_inner).0
    }

    fn monotonic(&self) -> Instant {
        self.now.lock().unwrap_or_else(PoisonError::into_inner).1
    }
}

/// A shareable clock handle.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let clock = ManualClock::new(start);
        let instant = clock.monotonic();
        assert_eq!(clock.now(), start);
        assert_eq!(clock.monotonic(), instant);
        clock.advance(Duration::from_secs(3_600));
        assert_eq!(clock.now(), start + Duration::from_secs(3_600));
        assert_eq!(clock.monotonic(), instant + Duration::from_secs(3_600));
    }
}
