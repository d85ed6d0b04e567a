//! "At most one per key per interval" (recovery per webhook). A timestamp per key is all
//! this needs; a token-bucket crate would add nothing for a burst of one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub(crate) struct OnePer(Mutex<HashMap<String, Instant>>);

impl OnePer {
    /// Starts one for `key` unless one started less than `interval` ago (then: how long to wait).
    pub(crate) fn try_start(&self, key: &str, interval: Duration) -> Result<(), Duration> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some(last) = m.get(key) {
            let since = now.duration_since(*last);
            if since < interval {
                return Err(interval - since);
            }
        }
        if m.len() > 100_000 {
            m.retain(|_, t| now.duration_since(*t) < interval);
        }
        m.insert(key.to_owned(), now);
        Ok(())
    }
}
