//! One page in one tab: every request it makes paused (the DevTools Fetch domain) and answered
//! by the caller's [`Network`]; then load, network quiet, a scroll for lazy content, and what
//! the caller asked for: a screenshot, a PDF, the rendered DOM.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{Value, json};
use url::Url;

use super::BrowserError;
use super::cdp::{Connection, Event};
use super::process::WINDOW;

/// Installed before any script of the page runs: notes the fonts scripts add through the
/// `FontFace` API, which leave no trace in the markup.
const HOOKS: &str = include_str!("hooks.js");
/// Scrolls to the bottom step by step (lazy images, infinite lists up to a bound), then back.
const SCROLL: &str = include_str!("scroll.js");
/// The rendered page as HTML, scripts removed and state frozen.
const SERIALIZE: &str = include_str!("serialize.js");

/// A network quiet this long counts as done.
const QUIET: Duration = Duration::from_millis(500);
/// Longest wait for quiet after load, and after the scroll.
const QUIET_AFTER_LOAD: Duration = Duration::from_secs(10);
const QUIET_AFTER_SCROLL: Duration = Duration::from_secs(5);
/// The tallest screenshot (Chromium's own limit for one capture is near 16,384 pixels).
const MAX_SHOT_HEIGHT: u32 = 16_384;
const MAX_SHOT_WIDTH: u32 = 4_096;

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The page's own document.
    Page,
    /// The document of a frame in it.
    Frame,
    /// A style sheet.
    Stylesheet,
    /// Anything else: scripts, images, fonts, data fetched by scripts.
    Other,
}

/// A request the page made.
#[derive(Debug, Clone)]
pub struct Request {
    /// Where to.
    pub url: Url,
    /// `GET`, `POST`...
    pub method: String,
    /// What for.
    pub kind: Kind,
}

/// How to answer a request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// With a response.
    Respond {
        /// HTTP status.
        status: u16,
        /// Headers (encodings and lengths are dropped: the body is given decoded).
        headers: Vec<(String, String)>,
        /// The body.
        body: Bytes,
    },
    /// With a redirect.
    Redirect {
        /// 301, 302...
        status: u16,
        /// Where to.
        location: String,
    },
    /// As a network error: a DevTools `ErrorReason` (`AccessDenied`, `NameNotResolved`...).
    Fail(&'static str),
}

/// Answers the page's requests: the crawl's recorder (fetching through the guarded fetcher,
/// recording each capture), or a snapshot's captures played back.
pub trait Network: Sync {
    /// The answer to one request.
    fn answer(&self, request: Request) -> BoxFuture<'_, Answer>;
}

/// What to take from a page.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wanted {
    /// The rendered DOM, for the offline copy.
    pub dom: bool,
    /// A PNG screenshot.
    pub screenshot: bool,
    /// Of the whole page (else of the window, as a visitor first sees it).
    pub full_page: bool,
    /// A PDF.
    pub pdf: bool,
    /// Scroll through the page first, so lazy content loads.
    pub scroll: bool,
}

/// What the browser made of a page.
#[derive(Debug, Clone, Default)]
pub struct Render {
    /// The rendered page as HTML (scripts removed), when asked.
    pub dom: Option<String>,
    /// The URL the rendered page's relative links resolve against.
    pub base: Option<String>,
    /// Its title.
    pub title: String,
    /// The screenshot (PNG), when asked.
    pub screenshot: Option<Vec<u8>>,
    /// The PDF, when asked.
    pub pdf: Option<Vec<u8>>,
    /// The page's size, in CSS pixels.
    pub width: u32,
    /// Its height.
    pub height: u32,
}

/// Requests being answered, and when that count last changed.
struct Activity {
    state: Mutex<ActivityState>,
}

struct ActivityState {
    in_flight: usize,
    changed: Instant,
    loaded: bool,
    crashed: bool,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                changed: Instant::now(),
                loaded: false,
                crashed: false,
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut ActivityState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn started(&self) {
        self.with(|s| {
            s.in_flight += 1;
            s.changed = Instant::now();
        });
    }

    fn finished(&self) {
        self.with(|s| {
            s.in_flight = s.in_flight.saturating_sub(1);
            s.changed = Instant::now();
        });
    }

    /// Waits until no request has been in flight for [`QUIET`], or `max` has passed.
    async fn quiet(&self, max: Duration) -> Result<(), BrowserError> {
        let start = Instant::now();
        loop {
            let (busy, since, crashed) = self.with(|s| (s.in_flight > 0, s.changed, s.crashed));
            if crashed {
                return Err(BrowserError::Crashed);
            }
            if (!busy && since.elapsed() >= QUIET) || start.elapsed() >= max {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the load event, at most `max` (a resource that never finishes does not
    /// hold the page back forever).
    async fn loaded(&self, max: Duration) -> Result<(), BrowserError> {
        let start = Instant::now();
        loop {
            let (loaded, crashed) = self.with(|s| (s.loaded, s.crashed));
            if crashed {
                return Err(BrowserError::Crashed);
            }
            if loaded || start.elapsed() >= max {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A tab of its own browser context (no cookies or storage shared with other pages); closed
/// when dropped, however the render ended.
struct Tab<'a> {
    conn: &'a Connection,
    context: String,
    target: String,
    session: String,
}

impl Drop for Tab<'_> {
    fn drop(&mut self) {
        self.conn.forget(&self.session);
        self.conn.fire(
            None,
            "Target.closeTarget",
            json!({ "targetId": self.target }),
        );
        self.conn.fire(
            None,
            "Target.disposeBrowserContext",
            json!({ "browserContextId": self.context }),
        );
    }
}

/// Renders `url` in a new tab, within `budget`.
pub async fn render(
    conn: &Connection,
    network: &dyn Network,
    url: &Url,
    wanted: Wanted,
    budget: Duration,
) -> Result<Render, BrowserError> {
    let context = string(
        &conn
            .call(None, "Target.createBrowserContext", json!({}))
            .await?,
        "browserContextId",
    )?;
    let target = conn
        .call(
            None,
            "Target.createTarget",
            json!({ "url": "about:blank", "browserContextId": context }),
        )
        .await;
    let target = match target {
        Ok(t) => string(&t, "targetId")?,
        Err(e) => {
            conn.fire(
                None,
                "Target.disposeBrowserContext",
                json!({ "browserContextId": context }),
            );
            return Err(e.into());
        }
    };
    let attached = conn
        .call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target, "flatten": true }),
        )
        .await;
    let mut tab = Tab {
        conn,
        context,
        target,
        session: String::new(),
    };
    tab.session = string(&attached?, "sessionId")?;
    let mut events = conn.events(&tab.session);
    let activity = Activity::new();
    let work = async {
        tokio::select! {
            result = drive(&tab, url, wanted, &activity, budget) => result,
            () = pump(&tab, &mut events, network, &activity) => Err(BrowserError::Crashed),
        }
    };
    match tokio::time::timeout(budget, work).await {
        Ok(result) => result,
        Err(_) => Err(BrowserError::Timeout {
            seconds: budget.as_secs(),
        }),
    }
}

/// The page's script: navigate, wait, scroll, take what was asked for.
async fn drive(
    tab: &Tab<'_>,
    url: &Url,
    wanted: Wanted,
    activity: &Activity,
    budget: Duration,
) -> Result<Render, BrowserError> {
    let call =
        |method: &'static str, params: Value| tab.conn.call(Some(&tab.session), method, params);
    call("Page.enable", json!({})).await?;
    call("Inspector.enable", json!({})).await?;
    call(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": HOOKS }),
    )
    .await?;
    call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": WINDOW.0, "height": WINDOW.1, "deviceScaleFactor": 1, "mobile": false }),
    )
    .await?;
    call(
        "Fetch.enable",
        json!({ "patterns": [{ "urlPattern": "*", "requestStage": "Request" }] }),
    )
    .await?;
    let navigated = call("Page.navigate", json!({ "url": url.as_str() })).await?;
    if let Some(error) = navigated
        .get("errorText")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
    {
        return Err(BrowserError::Navigation {
            detail: error.to_string(),
        });
    }
    activity.loaded(budget / 2).await?;
    activity.quiet(QUIET_AFTER_LOAD).await?;
    if wanted.scroll {
        evaluate(tab, SCROLL, true).await?;
        activity.quiet(QUIET_AFTER_SCROLL).await?;
    }
    evaluate(tab, "document.fonts.ready.then(() => true)", true).await?;
    let metrics = call("Page.getLayoutMetrics", json!({})).await?;
    let size = &metrics["cssContentSize"];
    let width = size["width"].as_f64().unwrap_or(WINDOW.0 as f64).ceil() as u32;
    let height = size["height"].as_f64().unwrap_or(WINDOW.1 as f64).ceil() as u32;
    let mut render = Render {
        width,
        height,
        ..Render::default()
    };
    if wanted.screenshot {
        let params = if wanted.full_page {
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": {
                    "x": 0, "y": 0, "scale": 1,
                    "width": width.clamp(1, MAX_SHOT_WIDTH),
                    "height": height.clamp(1, MAX_SHOT_HEIGHT),
                },
            })
        } else {
            json!({ "format": "png" })
        };
        let shot = call("Page.captureScreenshot", params).await?;
        render.screenshot = Some(decode(&shot, "data")?);
    }
    if wanted.pdf {
        let pdf = call(
            "Page.printToPDF",
            json!({ "printBackground": true, "preferCSSPageSize": true }),
        )
        .await?;
        render.pdf = Some(decode(&pdf, "data")?);
    }
    if wanted.dom {
        let page = evaluate(tab, SERIALIZE, false).await?;
        render.dom = page["html"].as_str().map(str::to_string);
        render.base = page["base"].as_str().map(str::to_string);
        render.title = page["title"].as_str().unwrap_or("").to_string();
    } else {
        let title = evaluate(tab, "document.title", false).await?;
        render.title = title.as_str().unwrap_or("").to_string();
    }
    Ok(render)
}

/// Evaluates an expression in the page; its value (awaited when it is a promise).
async fn evaluate(tab: &Tab<'_>, expression: &str, promise: bool) -> Result<Value, BrowserError> {
    let mut result = tab
        .conn
        .call(
            Some(&tab.session),
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": promise }),
        )
        .await?;
    if let Some(e) = result.get("exceptionDetails") {
        let text = e["exception"]["description"]
            .as_str()
            .or(e["text"].as_str())
            .unwrap_or("an exception");
        return Err(BrowserError::Script {
            detail: text.lines().next().unwrap_or("").to_string(),
        });
    }
    Ok(result["result"]
        .get_mut("value")
        .map(Value::take)
        .unwrap_or(Value::Null))
}

/// Answers the page's requests and follows its events, for as long as the render runs.
async fn pump(
    tab: &Tab<'_>,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Event>,
    network: &dyn Network,
    activity: &Activity,
) {
    let mut answering = FuturesUnordered::new();
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else {
                    activity.with(|s| s.crashed = true);
                    std::future::pending::<()>().await;
                    return;
                };
                match event.method.as_str() {
                    "Fetch.requestPaused" => {
                        activity.started();
                        answering.push(answer(tab, network, event.params));
                    }
                    "Page.loadEventFired" => activity.with(|s| s.loaded = true),
                    // alert(), confirm(), beforeunload: dismissed, or the page would hang.
                    "Page.javascriptDialogOpening" => tab.conn.fire(
                        Some(&tab.session),
                        "Page.handleJavaScriptDialog",
                        json!({ "accept": false }),
                    ),
                    "Inspector.targetCrashed" | "Inspector.detached" => {
                        activity.with(|s| s.crashed = true);
                    }
                    _ => {}
                }
            }
            Some(()) = answering.next(), if !answering.is_empty() => activity.finished(),
        }
    }
}

/// Answers one paused request through `network`.
async fn answer(tab: &Tab<'_>, network: &dyn Network, params: Value) {
    let id = params["requestId"].as_str().unwrap_or("").to_string();
    let request = &params["request"];
    let kind = match params["resourceType"].as_str() {
        Some("Document") if params["frameId"].as_str() == Some(tab.target.as_str()) => Kind::Page,
        Some("Document") => Kind::Frame,
        Some("Stylesheet") => Kind::Stylesheet,
        _ => Kind::Other,
    };
    let url = request["url"]
        .as_str()
        .and_then(|u| Url::parse(u).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"));
    let answer = match url {
        Some(url) => {
            let method = request["method"].as_str().unwrap_or("GET").to_string();
            network.answer(Request { url, method, kind }).await
        }
        None => Answer::Fail("BlockedByClient"),
    };
    let (method, params) = match answer {
        Answer::Respond {
            status,
            headers,
            body,
        } => {
            let headers: Vec<Value> = headers
                .iter()
                .filter(|(k, _)| {
                    !["content-encoding", "transfer-encoding", "content-length"]
                        .iter()
                        .any(|h| k.eq_ignore_ascii_case(h))
                })
                .map(|(k, v)| json!({ "name": k, "value": v }))
                .collect();
            let fulfilled = json!({
                "requestId": id,
                "responseCode": status,
                "responseHeaders": headers,
                "body": BASE64.encode(&body),
            });
            ("Fetch.fulfillRequest", fulfilled)
        }
        Answer::Redirect { status, location } => {
            let redirected = json!({
                "requestId": id,
                "responseCode": status,
                "responseHeaders": [{ "name": "Location", "value": location }],
                "body": "",
            });
            ("Fetch.fulfillRequest", redirected)
        }
        Answer::Fail(reason) => (
            "Fetch.failRequest",
            json!({ "requestId": id, "errorReason": reason }),
        ),
    };
    // A request the page gave up on meanwhile cannot be answered: no matter.
    let _ = tab
        .conn
        .call(Some(tab.session.as_str()), method, params)
        .await;
}

fn string(value: &Value, key: &str) -> Result<String, BrowserError> {
    value[key]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| BrowserError::Protocol(format!("an answer without {key}")))
}

fn decode(value: &Value, key: &str) -> Result<Vec<u8>, BrowserError> {
    let text = value[key].as_str().unwrap_or("");
    BASE64.decode(text).map_err(|e| BrowserError::Script {
        detail: format!("an unreadable {key} from the browser: {e}"),
    })
}
