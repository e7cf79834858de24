//! Stopping snapshots early (Ctrl-C, SIGTERM, the daemon shutting down): whoever holds a
//! [`Stop`] asks, every crawl sharing it winds down and records what it captured, marked
//! incomplete with the reason (issue 8).

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// A shared request to stop, with its reason.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    reason: Mutex<Option<String>>,
    notify: Notify,
}

impl Stop {
    /// A stop nobody has asked for yet.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Asks every crawl sharing this to stop, for `reason` (the first reason given wins).
    pub fn request(&self, reason: impl Into<String>) {
        let mut held = self.0.reason.lock().unwrap_or_else(|e| e.into_inner());
        if held.is_none() {
            *held = Some(reason.into());
        }
        drop(held);
        self.0.notify.notify_waiters();
    }

    /// Why a stop was asked for, if it was.
    pub fn reason(&self) -> Option<String> {
        self.0
            .reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Resolves once a stop is asked for.
    pub async fn requested(&self) {
        loop {
            let notified = self.0.notify.notified();
            if self.reason().is_some() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stop_wakes_every_waiter_and_keeps_the_first_reason() {
        let stop = Stop::new();
        let waiter = {
            let stop = stop.clone();
            tokio::spawn(async move { stop.requested().await })
        };
        tokio::task::yield_now().await;
        stop.request("SIGTERM");
        stop.request("Ctrl-C");
        waiter.await.unwrap();
        stop.requested().await;
        assert_eq!(stop.reason().as_deref(), Some("SIGTERM"));
    }
}
