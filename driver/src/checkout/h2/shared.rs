//! What the I/O task and the callers of one connection share: the [`State`] under one
//! uncontended mutex, the I/O task's wake-up, and the count of callers' handles (the
//! connection closes when the last one is dropped).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;

use tokio::sync::Notify;

use super::state::State;

/// The connection shared by the I/O task and the callers.
pub struct Shared {
    pub state: Mutex<State>,
    /// Wakes the I/O task: frames were queued, or the last [`Handle`] went away.
    pub wake_io: Notify,
    /// The callers' handles alive: at none, the I/O task closes the connection.
    handles: AtomicUsize,
}

/// A caller's share of a connection; the connection closes when the last one is dropped.
pub struct Handle(Arc<Shared>);

impl Handle {
    /// The first handle of a connection, and the I/O task's share of it.
    pub fn new(state: State) -> (Handle, Arc<Shared>) {
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            wake_io: Notify::new(),
            handles: AtomicUsize::new(1),
        });
        (Handle(Arc::clone(&shared)), shared)
    }
}

impl Clone for Handle {
    fn clone(&self) -> Self {
        self.0.handles.fetch_add(1, Ordering::Relaxed);
        Handle(Arc::clone(&self.0))
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if self.0.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.wake_io.notify_one();
        }
    }
}

impl std::ops::Deref for Handle {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl Shared {
    /// No caller holds the connection any more.
    pub fn abandoned(&self) -> bool {
        self.handles.load(Ordering::Acquire) == 0
    }

    /// The state; a caller that panicked while holding it cannot have left it torn in a way
    /// that matters more than failing its own call.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A caller's change to the state: `change` runs under the lock; then, outside it, the I/O
    /// task is woken if the change queued the first frames since its last write, and so is
    /// every caller the change made ready.
    pub fn update<T>(&self, change: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.lock();
        let was_idle = state.out.is_empty();
        let result = change(&mut state);
        let wake_io = was_idle && !state.out.is_empty();
        // Taken only when there is someone to wake: the empty list keeps its capacity for the
        // I/O task's next read.
        let wakers = if state.to_wake.is_empty() {
            Vec::new()
        } else {
            std::mem::take(&mut state.to_wake)
        };
        drop(state);
        if wake_io {
            self.wake_io.notify_one();
        }
        wakers.into_iter().for_each(Waker::wake);
        result
    }
}
