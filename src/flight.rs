//! Single flight: one holder per key at a time, the others wait their turn. An entry lives
//! only while someone holds or waits for it, so the map stays as small as the work under way
//! (a run over 10,000 images does not keep 20,000 idle locks).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

type Entries<K> = Mutex<HashMap<K, Arc<AsyncMutex<()>>>>;

/// Locks by key.
pub struct Flights<K: Hash + Eq + Clone> {
    entries: Entries<K>,
}

impl<K: Hash + Eq + Clone> Default for Flights<K> {
    fn default() -> Self {
        Flights { entries: Mutex::default() }
    }
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for Flights<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights").field("keys", &self.len()).finish()
    }
}

/// The turn of one key, held until dropped.
pub struct Flight<'a, K: Hash + Eq + Clone> {
    entries: &'a Entries<K>,
    key: K,
    guard: Option<OwnedMutexGuard<()>>,
}

impl<K: Hash + Eq + Clone> Flights<K> {
    /// Waits for the turn of `key`.
    pub async fn enter(&self, key: K) -> Flight<'_, K> {
        let lock = self.entries.lock().expect("flights lock").entry(key.clone()).or_default().clone();
        // Dropped while waiting, the clone goes with the future and the entry is pruned by the
        // next holder's drop.
        let guard = lock.lock_owned().await;
        Flight { entries: &self.entries, key, guard: Some(guard) }
    }

    /// Keys held or waited for.
    pub fn len(&self) -> usize {
        self.entries.lock().expect("flights lock").len()
    }

    /// Whether nothing is held or waited for.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Hash + Eq + Clone> Drop for Flight<'_, K> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut entries = self.entries.lock().expect("flights lock");
        // Only the map's own reference left: nobody holds or waits for this key.
        if entries.get(&self.key).is_some_and(|a| Arc::strong_count(a) == 1) {
            entries.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn one_holder_at_a_time_and_no_entry_left_behind() {
        let flights: Flights<String> = Flights::default();
        let inside = std::sync::atomic::AtomicUsize::new(0);
        let most = std::sync::atomic::AtomicUsize::new(0);
        let work = |k: &'static str| {
            let (flights, inside, most) = (&flights, &inside, &most);
            async move {
                let _turn = flights.enter(k.to_string()).await;
                let n = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                most.fetch_max(n, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
        };
        futures::join!(work("a"), work("a"), work("a"));
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 1, "two holders of one key at once");
        assert!(flights.is_empty(), "entries left after every turn ended");
        // A waiter dropped before its turn leaves nothing behind either.
        let held = flights.enter("b".to_string()).await;
        {
            let waiting = flights.enter("b".to_string());
            let r = tokio::time::timeout(Duration::from_millis(1), waiting).await;
            assert!(r.is_err(), "a second holder got in");
        }
        drop(held);
        assert!(flights.is_empty());
    }
}
