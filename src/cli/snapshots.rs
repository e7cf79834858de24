//! `archive snapshot`, `archive list`, `archive show`.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, bail};
use futures::stream::{self, StreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::files::scan_options;
use super::output::{self, Exit, say};
use super::{Context, SnapshotArgs};
use crate::browser::Launcher;
use crate::config::{BrowserUse, FetchConfig, SnapshotConfig};
use crate::fetch::Fetcher;
use crate::report::human_bytes;
use crate::scan::VaultView;
use crate::scan::scan;
use crate::snapshot::plan::{Targets, plans_for_targets};
use crate::snapshot::{self, Limits, Plan, Postpone, Progress, Stop, Taken, record};
use crate::store::Store;

/// Snapshots taken at once (each has its own crawl; the fetcher's limits are shared).
const PARALLEL_SNAPSHOTS: usize = 4;

pub(crate) fn snapshot(ctx: &Context, args: &SnapshotArgs) -> anyhow::Result<Exit> {
    if args.targets.is_empty() && !args.all {
        bail!("nothing to capture: give URLs or notes, or --all");
    }
    let (store, _lock) = Store::open_for_writing(&ctx.archive, "archive snapshot")?;
    for id in snapshot::finish_interrupted(&store)? {
        eprintln!("vaultkeep: recorded {id}, a snapshot an interrupted run left unfinished");
    }
    let mut config = ctx.config.snapshot.clone();
    if args.browser {
        config.browser = BrowserUse::Always;
    }
    if args.no_browser {
        config.browser = BrowserUse::Never;
    }
    config.screenshots |= args.screenshot;
    let browser = launcher(ctx, &config)?;
    let plans = plans(ctx, &store, args, &config)?;
    let fetcher = fetcher(ctx, args.allow_private, args.ignore_robots)?;
    let progress = Bar::new(ctx.interactive && !args.json);
    let stop = Stop::new();
    let tools = snapshot::Tools {
        fetcher: &fetcher,
        browser: browser.as_ref(),
    };
    let (store_ref, progress_ref, stop_ref) = (&store, &progress, &stop);
    let results = runtime()?.block_on(async {
        let signals = stop_on_signals(stop_ref.clone());
        let results = stream::iter(plans.iter())
            .map(move |plan| async move {
                // After a stop, snapshots not yet begun are not begun.
                if stop_ref.reason().is_some() {
                    return (plan, None);
                }
                let taken = snapshot::take(
                    tools,
                    store_ref,
                    plan,
                    progress_ref,
                    Postpone::WhenOffline,
                    stop_ref,
                )
                .await;
                (plan, Some(taken))
            })
            .buffer_unordered(PARALLEL_SNAPSHOTS)
            .collect::<Vec<_>>()
            .await;
        signals.abort();
        results
    });
    progress.bar.finish_and_clear();
    let mut summaries = Vec::new();
    let mut offline = Vec::new();
    let mut not_begun = Vec::new();
    let mut root_failed = false;
    let mut without_browser = false;
    for (plan, result) in results {
        match result.transpose()? {
            Some(Taken::Recorded(snap)) => {
                root_failed |= !snap.root_captured() || snap.incomplete.is_some();
                without_browser |= snap
                    .problems
                    .iter()
                    .any(|p| p.message.contains("no Chromium found"));
                summaries.push(snap.summary(&store.snapshot_dir(&snap.id)));
            }
            Some(Taken::Offline(detail)) => {
                root_failed = true;
                offline.push(serde_json::json!({ "root": plan.root.as_str(), "detail": detail }));
            }
            Some(Taken::Stopped(_)) | None => {
                root_failed = true;
                not_begun.push(plan.root.to_string());
            }
        }
    }
    if without_browser {
        eprintln!(
            "vaultkeep: some pages look built by scripts and were captured without them: {}",
            crate::browser::INSTALL_HINT
        );
    }
    summaries.sort_by(|a, b| a.root.cmp(&b.root));
    if args.json {
        output::json(&serde_json::json!({
            "snapshots": summaries,
            "offline": offline,
            "not_begun": not_begun,
        }))?;
    } else {
        for s in &summaries {
            print_summary(s);
        }
        for root in &not_begun {
            say!("{root}: stopped before anything was captured; nothing recorded");
        }
        for o in &offline {
            say!(
                "{}: not captured, and nothing recorded: the network seems down ({}); run again when online",
                o["root"].as_str().unwrap_or_default(),
                o["detail"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(Exit::failed_if(root_failed))
}

/// The browser `config` asks for: none when it is off; when every page needs it (or every
/// screenshot), an error now if there is none. In `auto`, a missing browser shows when a page
/// needs it: that page is captured statically, with one notice.
pub(crate) fn launcher(ctx: &Context, config: &SnapshotConfig) -> anyhow::Result<Option<Launcher>> {
    if config.browser == BrowserUse::Never && !config.screenshots {
        return Ok(None);
    }
    let launcher = Launcher::new(&ctx.config.browser);
    if launcher.executable().is_none()
        && (config.browser == BrowserUse::Always || config.screenshots)
    {
        bail!(crate::browser::BrowserError::NotFound);
    }
    Ok(Some(launcher))
}

/// The plans the targets ask for: URLs as given, notes through a scan of the vault.
fn plans(
    ctx: &Context,
    store: &Store,
    args: &SnapshotArgs,
    config: &SnapshotConfig,
) -> anyhow::Result<Vec<Plan>> {
    let limits = Limits {
        max_resources: args.max_resources.unwrap_or(config.max_resources),
        max_bytes: args.max_total_bytes.unwrap_or(config.max_total_bytes.get()),
    };
    let max_pages = args.max_pages.unwrap_or(config.max_pages);
    let targets = Targets::parse(&args.targets, args.all);
    let view = if targets.need_notes() {
        scan(&ctx.vault, store, &scan_options(ctx))?.view()?
    } else {
        VaultView::default()
    };
    let plans = plans_for_targets(
        &targets,
        |note| view.note(note),
        view.notes().map(|(_, f)| f),
        config,
        args.depth,
        max_pages,
        limits,
    )
    .map_err(|e| anyhow::anyhow!("{e} {}", ctx.vault.display()))?;
    Ok(plans)
}

/// The shared client, with the command line's overrides.
pub(crate) fn fetcher(
    ctx: &Context,
    allow_private: bool,
    ignore_robots: bool,
) -> anyhow::Result<Fetcher> {
    let mut config: FetchConfig = ctx.config.fetch.clone();
    config.allow_private |= allow_private;
    config.robots &= !ignore_robots;
    Fetcher::new(config).context("cannot set up the HTTP client")
}

/// Asks `stop` to stop on Ctrl-C or SIGTERM: snapshots in progress then record what they
/// captured, marked incomplete. A second Ctrl-C ends the process at once.
pub(crate) fn stop_on_signals(stop: Stop) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => stop.request("interrupted by Ctrl-C"),
            _ = term.recv() => stop.request("interrupted by SIGTERM"),
        }
        eprintln!(
            "vaultkeep: stopping; recording what was captured (Ctrl-C again to quit at once)"
        );
        let _ = tokio::signal::ctrl_c().await;
        std::process::exit(130);
    })
}

/// The async runtime for network work.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn print_summary(s: &record::Summary) {
    let incomplete = s
        .incomplete
        .as_ref()
        .map(|why| format!("\n  incomplete: {why}"))
        .unwrap_or_default();
    let status = match (&s.offline, &s.root_failure) {
        (Some(path), _) => format!("offline copy: {}", path.display()),
        (None, Some(why)) => format!("the root could not be captured: {why}"),
        (None, None) => "the root could not be captured".to_string(),
    };
    say!(
        "{}  {}\n  {} pages, {} resources, {} failed; {} new, {} already held; {}",
        s.id,
        s.root,
        s.pages,
        s.resources,
        s.failures,
        human_bytes(s.new_bytes),
        human_bytes(s.reused_bytes),
        status
    );
    if !incomplete.is_empty() {
        say!("{}", incomplete.trim_start_matches('\n'));
    }
}

pub(crate) fn list(ctx: &Context, json: bool) -> anyhow::Result<Exit> {
    let store = Store::open(&ctx.archive)?;
    let mut summaries = Vec::new();
    let mut unreadable = false;
    for s in record::load_all(&store) {
        match s {
            Ok(snap) => summaries.push(snap.summary(&store.snapshot_dir(&snap.id))),
            Err((path, message)) => {
                unreadable = true;
                eprintln!(
                    "vaultkeep: unreadable snapshot record {}: {message}",
                    path.display()
                );
            }
        }
    }
    if json {
        output::json(&serde_json::json!({ "snapshots": summaries }))?;
    } else if summaries.is_empty() {
        say!("No snapshots in {}.", ctx.archive.display());
    } else {
        for s in &summaries {
            print_summary(s);
        }
    }
    Ok(Exit::failed_if(unreadable))
}

pub(crate) fn show(ctx: &Context, id: &str, json: bool) -> anyhow::Result<Exit> {
    let store = Store::open(&ctx.archive)?;
    let id = record::find(&store, id).map_err(anyhow::Error::msg)?;
    let snap = record::load(&store, &id)
        .map_err(|(path, m)| anyhow::anyhow!("{}: {m}", path.display()))?;
    if json {
        output::json(&snap)?;
        return Ok(Exit::Success);
    }
    print_summary(&snap.summary(&store.snapshot_dir(&snap.id)));
    say!("Captures ({}):", snap.captures.len());
    for c in &snap.captures {
        let moved = if c.final_url != c.url {
            format!(" → {}", c.final_url)
        } else {
            String::new()
        };
        say!(
            "  {} {:>9}  {}{}",
            c.status,
            human_bytes(c.size),
            c.url,
            moved
        );
        if let Some(r) = &c.rendered {
            let how = if r.dom.is_some() {
                "rendered in the browser"
            } else {
                "screenshot of the capture"
            };
            say!("      {how}: {} x {} px", r.width, r.height);
            // Screenshots and PDFs lie beside the offline page, under renders/.
            let page = c
                .offline
                .as_deref()
                .and_then(|o| o.strip_prefix(&format!("{}/", crate::store::layout::OFFLINE)));
            for (object, ext) in [(r.screenshot, "png"), (r.pdf, "pdf")] {
                if let (Some(_), Some(page)) = (object, page) {
                    let file = store
                        .snapshot_dir(&snap.id)
                        .join(crate::store::layout::RENDERS)
                        .join(format!("{page}.{ext}"));
                    say!("      {ext}: {}", file.display());
                }
            }
        }
    }
    output::list(
        "Failures",
        snap.failures.len(),
        snap.failures
            .iter()
            .map(|f| format!("{}  {}", crate::fetch::shorten(&f.url), f.detail)),
    );
    if snap.not_listed > 0 {
        say!(
            "  and {} more URLs over a limit, counted but not listed",
            snap.not_listed
        );
    }
    output::list(
        "Problems",
        snap.problems.len(),
        snap.problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message)),
    );
    Ok(Exit::Success)
}

/// A spinner with counts, on a terminal only.
struct Bar {
    bar: ProgressBar,
    done: AtomicU64,
    bytes: AtomicU64,
    failed: AtomicU64,
    queued: AtomicU64,
}

impl Bar {
    fn new(visible: bool) -> Bar {
        let bar = if visible {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Bar {
            bar,
            done: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            queued: AtomicU64::new(0),
        }
    }

    fn show(&self) {
        self.bar.set_message(format!(
            "{}/{} fetched, {}, {} failed",
            self.done.load(Ordering::Relaxed),
            self.queued.load(Ordering::Relaxed),
            human_bytes(self.bytes.load(Ordering::Relaxed)),
            self.failed.load(Ordering::Relaxed)
        ));
    }
}

impl Progress for Bar {
    fn done(&self, bytes: u64, failed: bool) {
        self.done.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.show();
    }

    fn queued(&self, n: u64) {
        self.queued.fetch_add(n, Ordering::Relaxed);
        self.show();
    }
}
