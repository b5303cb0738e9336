//! This instance's queue per connection: refreshes, connects, disconnects and refusal marks of
//! one connection take turns here before they go to the database (where instances take turns
//! under the row's lease).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

/// One queue per key, kept only while someone holds or waits for a turn: a connection used
/// once does not stay in memory for the life of the process.
#[derive(Debug)]
pub struct KeyedQueue<K> {
    queues: Arc<Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>>,
}

impl<K> Clone for KeyedQueue<K> {
    fn clone(&self) -> Self {
        Self {
            queues: self.queues.clone(),
        }
    }
}

impl<K> Default for KeyedQueue<K> {
    fn default() -> Self {
        Self {
            queues: Arc::default(),
        }
    }
}

impl<K: Eq + Hash + Clone> KeyedQueue<K> {
    /// Waits for `key`'s turn; the turn ends when the returned value is dropped.
    pub async fn turn(&self, key: &K) -> Turn<K> {
        let queue = self
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_default()
            .clone();
        let guard = queue.lock_owned().await;
        Turn {
            guard: Some(guard),
            key: key.clone(),
            queues: self.queues.clone(),
        }
    }

    /// How many keys have a queue now (held or waited for).
    pub fn len(&self) -> usize {
        self.queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A key's turn in its [`KeyedQueue`].
pub struct Turn<K: Eq + Hash> {
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    key: K,
    queues: Arc<Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>>,
}

impl<K: Eq + Hash> Drop for Turn<K> {
    fn drop(&mut self) {
        // The guard holds a reference to the queue: let it go first, then the map's reference
        // is the only one left unless someone else holds or waits for a turn (each waiter holds
        // one). Both checks run under the map's lock, so no new waiter slips in between.
        self.guard.take();
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        if queues
            .get(&self.key)
            .is_some_and(|queue| Arc::strong_count(queue) == 1)
        {
            queues.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_queue_lives_only_while_it_is_used() {
        let queues = KeyedQueue::default();
        let first = queues.turn(&"a").await;
        assert_eq!(queues.len(), 1);

        // A second turn of the same key waits for the first.
        let waiting = {
            let queues = queues.clone();
            tokio::spawn(async move {
                let _turn = queues.turn(&"a").await;
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        let other = queues.turn(&"b").await;
        assert_eq!(queues.len(), 2);
        drop(other);
        assert_eq!(queues.len(), 1, "b's queue went with its last turn");

        drop(first);
        waiting.await.unwrap();
        assert_eq!(
            queues.len(),
            0,
            "a's queue went once its waiter was done too"
        );
    }
}
