//! The engine's wake-up: raised when work may have become claimable (a publish, an enable,
//! a retry, a freed slot), in this process or, for shared stores, in another replica.

use std::sync::Arc;
use tokio::sync::Notify;

/// A wake-up signal from a store (and the engine's own attempts) to its one consumer, the
/// engine's dispatcher. Raising it while nobody waits keeps one wake-up stored, so a raise
/// between two waits is never lost; a second waiter would take wake-ups away from the first.
#[derive(Clone, Debug, Default)]
pub struct WorkSignal(Arc<Notify>);

impl WorkSignal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes the engine (or its next wait).
    pub fn raise(&self) {
        self.0.notify_one();
    }

    /// Resolves at the next raise (or at once if one is stored).
    pub async fn raised(&self) {
        self.0.notified().await
    }
}
