//! The NBD bench's tables: one per workload (a row per server), then ringleader against the
//! best peer on every workload, with the goal of issue 13.

use ringleader_bench::measure::spread;
use ringleader_bench::table::{Table, ratio, si};

use super::Run;
use super::server::Server;
use super::workload::Workload;

/// The runs of one cell (workload x server), or the error that ended it.
pub type Cell = Result<Vec<Run>, String>;

/// Issue 13: ringleader's IOPS per server CPU-second over the best peer's, on every workload.
pub const GOAL_EFFICIENCY: f64 = 1.30;
/// Issue 13: ringleader's IOPS over the best peer's, on every workload.
pub const GOAL_IOPS: f64 = 1.00;

fn runs(cell: &Cell) -> Option<&[Run]> {
    match cell {
        Ok(runs) if !runs.is_empty() => Some(runs),
        _ => None,
    }
}

fn spread_of(runs: &[Run], f: impl Fn(&Run) -> f64) -> (f64, f64, f64) {
    spread(&runs.iter().map(f).collect::<Vec<_>>())
}

fn median_of(cell: &Cell, f: impl Fn(&Run) -> f64) -> Option<f64> {
    runs(cell).map(|r| spread_of(r, f).0)
}

fn cell_text((m, lo, hi): (f64, f64, f64)) -> String {
    format!("{} [{} .. {}]", si(m), si(lo), si(hi))
}

/// One workload: a row per server.
pub fn workload_table(servers: &[Server], cells: &[Cell]) -> Table {
    let mut t = Table::new([
        "server",
        "IOPS median [min .. max]",
        "IOPS per CPU-s median [min .. max]",
        "µs CPU/IO",
        "server CPU %",
        "client CPU %",
        "others/steal % (max)",
    ]);
    for (s, cell) in servers.iter().zip(cells) {
        match (cell, runs(cell)) {
            (_, Some(r)) => t.row([
                s.name().to_owned(),
                cell_text(spread_of(r, Run::iops)),
                cell_text(spread_of(r, Run::iops_per_cpu_s)),
                format!("{:.2}", spread_of(r, Run::cpu_us_per_io).0),
                format!("{:.0}", spread_of(r, Run::server_cpu_percent).0),
                format!("{:.0}", spread_of(r, Run::client_cpu_percent).0),
                format!(
                    "{:.0} / {:.0}",
                    spread_of(r, |r| r.others).2,
                    spread_of(r, |r| r.steal).2
                ),
            ]),
            (Err(e), None) => {
                let mut row = vec![s.name().to_owned(), format!("failed: {e}")];
                row.resize(7, "-".to_owned());
                t.row(row);
            }
            (Ok(_), None) => t.row([s.name(), "-", "-", "-", "-", "-", "-"]),
        }
    }
    t
}

/// The peer with the highest median of `f`, and that median.
fn best_peer(servers: &[Server], cells: &[Cell], f: fn(&Run) -> f64) -> Option<(Server, f64)> {
    servers
        .iter()
        .zip(cells)
        .filter(|(s, _)| !s.is_ringleader())
        .filter_map(|(&s, c)| Some((s, median_of(c, f)?)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// ringleader's median over the best peer's, for `f`: (ratio, the peer).
fn versus_best(servers: &[Server], cells: &[Cell], f: fn(&Run) -> f64) -> Option<(f64, Server)> {
    let rl = servers.iter().position(|&s| s == Server::Ringleader)?;
    let mine = median_of(&cells[rl], f)?;
    let (peer, theirs) = best_peer(servers, cells, f)?;
    Some((mine / theirs, peer))
}

/// ringleader / best peer per workload (`cells[workload][server]`), and the verdict on the
/// goal of issue 13; `None` without ringleader or a peer.
pub fn summary(
    workloads: &[Workload],
    servers: &[Server],
    cells: &[Vec<Cell>],
) -> Option<(Table, String)> {
    let mut t = Table::new([
        "workload",
        "IOPS: rl / best peer",
        "IOPS per CPU-s: rl / best peer",
        "goal",
    ]);
    let mut missed = Vec::new();
    let mut any = false;
    for (w, cells) in workloads.iter().zip(cells) {
        let iops = versus_best(servers, cells, Run::iops);
        let eff = versus_best(servers, cells, Run::iops_per_cpu_s);
        let text = |v: Option<(f64, Server)>| {
            v.map_or("-".to_owned(), |(x, s)| {
                format!("{} ({})", ratio(x), s.name())
            })
        };
        let met = matches!((iops, eff), (Some((i, _)), Some((e, _)))
            if i >= GOAL_IOPS && e >= GOAL_EFFICIENCY);
        any |= iops.is_some() || eff.is_some();
        if !met {
            missed.push(w.name);
        }
        t.row([
            w.name.to_owned(),
            text(iops),
            text(eff),
            if met { "met" } else { "NOT met" }.to_owned(),
        ]);
    }
    if !any {
        return None;
    }
    let verdict = format!(
        "Goal (issue 13): ringleader >= {} the best peer's IOPS per server CPU-second and >= \
         {} its IOPS, on every workload: met on {} of {}{}",
        ratio(GOAL_EFFICIENCY),
        ratio(GOAL_IOPS),
        workloads.len() - missed.len(),
        workloads.len(),
        if missed.is_empty() {
            String::new()
        } else {
            format!(" (not on {})", missed.join(", "))
        }
    );
    Some((t, verdict))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(ios: f64, server_cpu: f64) -> Run {
        Run {
            ios,
            secs: 1.0,
            server_cpu,
            client_cpu: 1.0,
            others: 0.0,
            steal: 0.0,
        }
    }

    #[test]
    fn ratios_are_against_the_best_peer_of_each_metric() {
        let servers = [Server::Ringleader, Server::QemuNbdUring, Server::Nbdkit];
        // qemu-nbd has the most IOPS, nbdkit the most IOPS per CPU-second.
        let cells: Vec<Cell> = vec![
            Ok(vec![run(130.0, 0.5)]),
            Ok(vec![run(100.0, 1.0)]),
            Ok(vec![run(80.0, 0.4)]),
        ];
        let (x, s) = versus_best(&servers, &cells, Run::iops).unwrap();
        assert_eq!((x, s), (1.3, Server::QemuNbdUring));
        let (x, s) = versus_best(&servers, &cells, Run::iops_per_cpu_s).unwrap();
        assert_eq!((x, s), (260.0 / 200.0, Server::Nbdkit));
        let w = [Workload::from_name("rand-read-qd32").unwrap()];
        let (_, verdict) = summary(&w, &servers, &[cells]).unwrap();
        assert!(verdict.contains("met on 1 of 1"), "{verdict}");
    }

    #[test]
    fn a_failed_cell_is_shown_and_never_best() {
        let servers = [Server::Ringleader, Server::Nbdkit, Server::QemuNbdThreads];
        let cells: Vec<Cell> = vec![
            Ok(vec![run(100.0, 1.0)]),
            Err("boom".to_owned()),
            Ok(vec![run(50.0, 1.0)]),
        ];
        let (x, s) = versus_best(&servers, &cells, Run::iops).unwrap();
        assert_eq!((x, s), (2.0, Server::QemuNbdThreads));
        assert!(
            workload_table(&servers, &cells)
                .to_string()
                .contains("failed: boom")
        );
    }
}
