//! Whose turn it is. Each scenario file used to be its own test binary, and cargo runs test binaries one after
//! another: scenarios of different files never overlapped, while the tests of one file ran side by side. In one
//! binary that property has to be kept on purpose — several scenarios stop a broker, kill processes or measure
//! rates and latencies, and would disturb (or be disturbed by) any other scenario running beside them.
//!
//! [`turn`] hands the turn to one file (its module path) at a time: tests of the same file share it, tests of
//! another file wait until it is free. The turn is released when the returned guard drops, also on a panic.

use std::sync::{Condvar, Mutex, MutexGuard};

struct State {
    holder: Option<&'static str>,
    tests: usize,
}

static STATE: Mutex<State> = Mutex::new(State { holder: None, tests: 0 });
static FREED: Condvar = Condvar::new();

fn state() -> MutexGuard<'static, State> {
    // A test that panicked while holding the lock poisons it; the state itself is always consistent.
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Holds the turn of one scenario file while alive.
#[must_use = "the turn ends when this is dropped"]
#[derive(Debug)]
pub struct Turn(());

impl Drop for Turn {
    fn drop(&mut self) {
        let mut s = state();
        s.tests -= 1;
        if s.tests == 0 {
            s.holder = None;
            FREED.notify_all();
        }
    }
}

/// Waits for `file`'s turn (pass `module_path!()`): until no test of another scenario file runs.
pub async fn turn(file: &'static str) -> Turn {
    tokio::task::spawn_blocking(move || turn_blocking(file)).await.expect("waiting for a turn")
}

/// [`turn`] for a test without a runtime.
pub fn turn_blocking(file: &'static str) -> Turn {
    let mut s = state();
    while s.holder.is_some_and(|h| h != file) {
        s = FREED.wait(s).unwrap_or_else(|e| e.into_inner());
    }
    s.holder = Some(file);
    s.tests += 1;
    Turn(())
}
