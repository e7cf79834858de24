//! The Chrome DevTools Protocol over the browser's pipe: JSON messages ended by a NUL byte.
//! Commands carry an id and get one answer; events carry a session id and go to whoever
//! listens on that session. Only the handful of methods a capture needs are used, as JSON
//! values: the full generated bindings (chromiumoxide) speak only over a debugging port,
//! which any local program (or a page) could reach.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::process::Pipes;

/// The largest message read: a full-page screenshot or a PDF, in base64, fits many times.
const MAX_MESSAGE: usize = 512 * 1024 * 1024;

/// An event from the browser.
#[derive(Debug)]
pub struct Event {
    /// `Fetch.requestPaused`, `Page.loadEventFired`...
    pub method: String,
    /// Its parameters.
    pub params: Value,
}

/// Why a command got no result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CdpError {
    /// The browser answered with an error.
    #[error("{method}: {message}")]
    Command {
        /// The command.
        method: String,
        /// The browser's message.
        message: String,
    },
    /// The browser is gone (it exited, crashed or was killed).
    #[error("the browser closed")]
    Closed,
}

type Answer = Result<Value, String>;

#[derive(Default)]
struct Routes {
    pending: HashMap<u64, oneshot::Sender<Answer>>,
    sessions: HashMap<String, mpsc::UnboundedSender<Event>>,
    closed: bool,
}

/// A connection to one browser.
pub struct Connection {
    next_id: AtomicU64,
    routes: Arc<Mutex<Routes>>,
    outgoing: mpsc::UnboundedSender<Vec<u8>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Connection {
    /// Starts reading and writing the pipe (on the current tokio runtime).
    pub fn start(pipes: Pipes) -> Connection {
        let routes = Arc::new(Mutex::new(Routes::default()));
        let (outgoing, mut queue) = mpsc::unbounded_channel::<Vec<u8>>();
        let mut commands = pipes.commands;
        let writer = tokio::spawn(async move {
            while let Some(message) = queue.recv().await {
                if commands.write_all(&message).await.is_err() {
                    break;
                }
            }
        });
        let reader = tokio::spawn(read_messages(pipes.messages, routes.clone()));
        Connection {
            next_id: AtomicU64::new(1),
            routes,
            outgoing,
            tasks: vec![writer, reader],
        }
    }

    /// Sends a command (to a session, or to the browser) and waits for its result.
    pub async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, CdpError> {
        let (tx, rx) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut routes = lock(&self.routes);
            if routes.closed {
                return Err(CdpError::Closed);
            }
            routes.pending.insert(id, tx);
        }
        self.send(id, session, method, params);
        match rx.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(message)) => Err(CdpError::Command {
                method: method.to_string(),
                message,
            }),
            Err(_) => Err(CdpError::Closed),
        }
    }

    /// Sends a command without waiting for its answer (cleaning up from a `Drop`).
    pub fn fire(&self, session: Option<&str>, method: &str, params: Value) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.send(id, session, method, params);
    }

    fn send(&self, id: u64, session: Option<&str>, method: &str, params: Value) {
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            message["sessionId"] = Value::String(s.to_string());
        }
        let mut bytes = serde_json::to_vec(&message).unwrap_or_default();
        bytes.push(0);
        let _ = self.outgoing.send(bytes);
    }

    /// The events of one session, from now on (one listener per session).
    pub fn events(&self, session: &str) -> mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut routes = lock(&self.routes);
        if !routes.closed {
            routes.sessions.insert(session.to_string(), tx);
        }
        rx
    }

    /// Stops routing a session's events.
    pub fn forget(&self, session: &str) {
        lock(&self.routes).sessions.remove(session);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn lock(routes: &Mutex<Routes>) -> std::sync::MutexGuard<'_, Routes> {
    routes.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads NUL-ended messages until the pipe closes; then fails every waiting command.
async fn read_messages(mut pipe: tokio::net::unix::pipe::Receiver, routes: Arc<Mutex<Routes>>) {
    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 256 * 1024];
    let mut scanned = 0;
    loop {
        let n = match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buffer.extend_from_slice(&chunk[..n]);
        while let Some(end) = buffer[scanned..].iter().position(|&b| b == 0) {
            let end = scanned + end;
            route(&buffer[..end], &routes);
            buffer.drain(..=end);
            scanned = 0;
        }
        scanned = buffer.len();
        if buffer.len() > MAX_MESSAGE {
            tracing::warn!("a DevTools message over {MAX_MESSAGE} bytes: closing the browser");
            break;
        }
    }
    let mut r = lock(&routes);
    r.closed = true;
    r.pending.clear();
    r.sessions.clear();
}

fn route(bytes: &[u8], routes: &Mutex<Routes>) {
    let Ok(mut message) = serde_json::from_slice::<Value>(bytes) else {
        tracing::debug!("an unreadable DevTools message");
        return;
    };
    let mut r = lock(routes);
    if let Some(id) = message.get("id").and_then(Value::as_u64) {
        if let Some(tx) = r.pending.remove(&id) {
            let answer = match message.get_mut("error") {
                Some(e) => Err(e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("error")
                    .to_string()),
                None => Ok(message
                    .get_mut("result")
                    .map(Value::take)
                    .unwrap_or(Value::Null)),
            };
            let _ = tx.send(answer);
        }
        return;
    }
    let session = message
        .get("sessionId")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if let Some(tx) = r.sessions.get(&session) {
        let event = Event {
            method: message
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            params: message
                .get_mut("params")
                .map(Value::take)
                .unwrap_or(Value::Null),
        };
        if tx.send(event).is_err() {
            r.sessions.remove(&session);
        }
    }
}
