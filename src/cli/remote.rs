//! `remote push`, `remote pull`, `remote status`, `remote verify`.

use super::output::{self, Exit, say};
use super::snapshots::runtime;
use super::{Context, RemoteCommand};
use crate::remote::{self, Client, Device};
use crate::report::human_bytes;
use crate::store::Store;

pub(crate) fn run(ctx: &Context, command: &RemoteCommand) -> anyhow::Result<Exit> {
    let config = &ctx.config.remote;
    let client = Client::open(config)?;
    let concurrency = config.concurrency;
    match command {
        RemoteCommand::Push { json } => {
            let (store, _lock) = Store::open_for_writing(&ctx.archive, "remote push")?;
            let me = remote::device(&store, config.device.as_deref())?;
            let report = runtime()?.block_on(remote::push(&client, &store, &me, concurrency))?;
            if *json {
                output::json(&report)?;
            } else {
                say!(
                    "Pushed to {} as {}: {} objects ({}), {} records, {} snapshots; {} objects were there already.",
                    report.remote,
                    report.device,
                    report.objects,
                    human_bytes(report.bytes),
                    report.records,
                    report.snapshots,
                    report.objects_present
                );
                problems(&report.problems);
            }
            Ok(Exit::failed_if(!report.problems.is_empty()))
        }
        RemoteCommand::Pull { json } => {
            let (store, _lock) = Store::open_for_writing(&ctx.archive, "remote pull")?;
            let me = remote::device(&store, config.device.as_deref())?;
            let report = runtime()?.block_on(remote::pull(&client, &store, &me, concurrency))?;
            if *json {
                output::json(&report)?;
            } else {
                let records: usize = report.devices.iter().map(|(_, n)| n).sum();
                say!(
                    "Pulled from {}: {} records from {} devices, {} objects ({}), {} snapshots.",
                    report.remote,
                    records,
                    report.devices.len(),
                    report.objects,
                    human_bytes(report.bytes),
                    report.snapshots
                );
                diverged(&report.diverged);
                problems(&report.problems);
            }
            Ok(Exit::failed_if(!report.problems.is_empty()))
        }
        RemoteCommand::Status { json } => {
            let store = Store::open(&ctx.archive)?;
            let me = device_or_new(&store, config.device.as_deref())?;
            let report = runtime()?.block_on(remote::status(&client, &store, &me))?;
            if *json {
                output::json(&report)?;
            } else {
                say!("{} (this device: {})", report.remote, report.device);
                say!(
                    "  to push: {} objects ({}), {} of records, {} snapshots",
                    report.objects_to_push,
                    human_bytes(report.bytes_to_push),
                    human_bytes(report.record_bytes_to_push),
                    report.snapshots_to_push
                );
                for d in &report.devices {
                    say!(
                        "  {}: {} of records, {} not pulled",
                        d.device,
                        human_bytes(d.record_bytes),
                        human_bytes(d.record_bytes_to_pull)
                    );
                }
                say!("  to pull: {} snapshots", report.snapshots_to_pull);
                diverged(&report.diverged);
            }
            Ok(Exit::Success)
        }
        RemoteCommand::Gc {
            grace,
            dry_run,
            json,
        } => gc(&client, grace.get(), *dry_run, *json),
        RemoteCommand::Verify { json } => {
            let report = runtime()?.block_on(remote::verify(&client, concurrency))?;
            if *json {
                output::json(&report)?;
            } else {
                let records: usize = report.devices.iter().map(|(_, n)| n).sum();
                say!(
                    "{}: {} objects ({}) read and hashed, {} records of {} devices and {} snapshots checked: {}.",
                    report.remote,
                    report.objects,
                    human_bytes(report.bytes),
                    records,
                    report.devices.len(),
                    report.snapshots,
                    if report.damaged() {
                        "DAMAGED"
                    } else {
                        "all sound"
                    }
                );
                problems(&report.problems);
            }
            Ok(Exit::failed_if(report.damaged()))
        }
    }
}

fn gc(
    client: &Client,
    grace: std::time::Duration,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<Exit> {
    let report = runtime()?.block_on(remote::gc(client, grace, dry_run))?;
    if json {
        output::json(&report)?;
    } else {
        let verb = if dry_run { "would delete" } else { "deleted" };
        say!(
            "{}: {} objects, {} named by records; {verb} {} ({}), marked {} for a later run, left {} younger than the grace period.",
            report.remote,
            report.objects,
            report.referenced,
            report.deleted,
            human_bytes(report.deleted_bytes),
            report.marked,
            report.young
        );
    }
    Ok(Exit::Success)
}

/// The device, without creating one (status only reads the archive).
fn device_or_new(store: &Store, name: Option<&str>) -> anyhow::Result<Device> {
    match store.read_doc::<Device>(crate::store::Doc::Device) {
        Some(d) => Ok(d),
        None => Ok(Device {
            id: "(not pushed yet)".into(),
            name: name.unwrap_or("").to_string(),
        }),
    }
}

fn diverged(list: &[remote::Divergence]) {
    output::list(
        "Files whose devices disagree (both versions are kept; see `vaultkeep history PATH`)",
        list.len(),
        list.iter().map(|d| {
            format!(
                "{}: {} here, {} on {}",
                d.path,
                d.here.short(),
                d.there.short(),
                d.device
            )
        }),
    );
}

fn problems(list: &[crate::report::Problem]) {
    output::list(
        "Problems",
        list.len(),
        list.iter().map(|p| format!("{}: {}", p.path, p.message)),
    );
}
