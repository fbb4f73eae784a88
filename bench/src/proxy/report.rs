//! The proxy bench's tables: per row, the median of its runs with `[min .. max]`, and
//! ratios of medians against the reference rows.

use ringleader_bench::table::{Table, ratio};

use super::rows::Row;
use super::run::Sample;

/// Everything measured for one row.
#[derive(Debug)]
pub struct RowResult {
    pub row: Row,
    /// Why the row was not run (missing tool or binary), if so.
    pub skipped: Option<String>,
    /// One entry per run.
    pub runs: Vec<Result<Sample, String>>,
}

impl RowResult {
    fn ok(&self) -> impl Iterator<Item = &Sample> {
        self.runs.iter().filter_map(|r| r.as_ref().ok())
    }

    fn gbps(&self) -> Option<Stat> {
        Stat::of(self.ok().map(|s| s.gbps).collect())
    }

    fn cpu_per_gb(&self) -> Option<Stat> {
        Stat::of(self.ok().filter_map(Sample::cpu_per_gb).collect())
    }

    fn irq_per_gb(&self) -> Option<Stat> {
        Stat::of(self.ok().map(Sample::irq_per_gb).collect())
    }

    fn cpu_percent(&self) -> Option<Stat> {
        Stat::of(self.ok().filter_map(Sample::cpu_percent).collect())
    }

    fn load_percent(&self) -> Option<Stat> {
        Stat::of(self.ok().map(|s| s.load_cpu_percent).collect())
    }

    fn others_max(&self) -> Option<f64> {
        self.ok().map(|s| s.others_percent).max_by(f64::total_cmp)
    }

    fn first_error(&self) -> Option<&str> {
        self.runs
            .iter()
            .find_map(|r| r.as_ref().err().map(String::as_str))
    }
}

/// Median, min and max of some runs.
#[derive(Clone, Copy, Debug)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

impl Stat {
    fn of(mut v: Vec<f64>) -> Option<Stat> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Stat {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }

    fn cell(self, digits: usize) -> String {
        format!(
            "{:.d$} [{:.d$} .. {:.d$}]",
            self.median,
            self.min,
            self.max,
            d = digits
        )
    }
}

/// The cells of a row without measurements: its name, why, and dashes.
fn unmeasured(name: String, why: String) -> [String; 10] {
    let mut cells: [String; 10] = std::array::from_fn(|_| "-".to_owned());
    cells[0] = name;
    cells[1] = why;
    cells
}

fn percent(s: Option<Stat>) -> String {
    s.map_or("-".to_owned(), |c| format!("{:.0}", c.median))
}

/// Print one table. Throughput ratios are against `tput_ref` (the rows named, best median
/// among them); CPU/GB ratios against `cpu_ref`.
fn table(results: &[&RowResult], tput_ref: (&str, &[Row]), cpu_ref: Row) -> String {
    let best = results
        .iter()
        .filter(|r| tput_ref.1.contains(&r.row))
        .filter_map(|r| Some((r.row, r.gbps()?.median)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let cpu_base = results
        .iter()
        .find(|r| r.row == cpu_ref)
        .and_then(|r| r.cpu_per_gb())
        .map(|s| s.median);
    let mut t = Table::new([
        "row".to_owned(),
        "Gbit/s median [min .. max]".to_owned(),
        format!("vs {}", tput_ref.0),
        "CPU s/GB median [min .. max]".to_owned(),
        format!("CPU/GB vs {}", cpu_ref.name()),
        "+softirq s/GB".to_owned(),
        "proxy CPU %".to_owned(),
        "load CPU %".to_owned(),
        "others % (max)".to_owned(),
        "runs (Gbit/s)".to_owned(),
    ]);
    let mut notes = Vec::new();
    for r in results {
        let name = r.row.name().to_owned();
        if let Some(why) = &r.skipped {
            t.row(unmeasured(name, why.clone()));
            continue;
        }
        let failed = r.runs.iter().filter(|x| x.is_err()).count();
        if let Some(e) = r.first_error() {
            notes.push(format!(
                "{}: {failed} of {} run(s) failed: {e}",
                r.row.name(),
                r.runs.len()
            ));
        }
        let Some(g) = r.gbps() else {
            t.row(unmeasured(name, "failed".to_owned()));
            continue;
        };
        let vs = best.map_or("-".to_owned(), |(_, b)| ratio(g.median / b));
        let cpu = r.cpu_per_gb();
        let cpu_vs = cpu
            .zip(cpu_base)
            .map_or("-".to_owned(), |(c, b)| ratio(c.median / b));
        let runs: Vec<String> = r
            .runs
            .iter()
            .map(|x| {
                x.as_ref()
                    .map_or("err".to_owned(), |s| format!("{:.2}", s.gbps))
            })
            .collect();
        t.row([
            name,
            g.cell(2),
            vs,
            cpu.map_or("-".to_owned(), |c| c.cell(3)),
            cpu_vs,
            r.irq_per_gb()
                .map_or("-".to_owned(), |c| format!("{:.3}", c.median)),
            percent(r.cpu_percent()),
            percent(r.load_percent()),
            r.others_max().map_or("-".to_owned(), |o| format!("{o:.0}")),
            runs.join(", "),
        ]);
    }
    let mut out = t.to_string();
    if let Some((row, gbps)) = best {
        out.push_str(&format!(
            "{} = {} ({gbps:.2} Gbit/s median)\n",
            tput_ref.0,
            row.name()
        ));
    }
    for n in notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

/// What the columns mean, printed under the tables.
pub const LEGEND: &str = "\
Columns: Gbit/s = iperf3 receiver throughput; CPU s/GB = the proxy's process tree \
utime+stime per 1e9 bytes delivered to the iperf3 server (fan-out: to the server; the mirrors \
got as many again each); +softirq s/GB = irq+softirq time on the proxy's CPU per GB, not \
charged to any process (this kernel accounts it apart): mostly the loopback receive path of \
the proxy's own sends; proxy CPU % / load CPU % = share of one CPU taken by the proxy / by \
the iperf3 client + server (+ sinks) on the load CPU; others % = busy time of the two CPUs no process of the bench \
accounts for (other work on the host), the worst run. Ratios are ratios of medians.";

/// The single-stream table: throughput vs the best peer, CPU/GB vs tokio.
pub fn single(results: &[&RowResult]) -> String {
    let peers: Vec<Row> = Row::ALL.into_iter().filter(|r| r.peer()).collect();
    table(results, ("best peer", &peers), Row::Tokio)
}

/// The fan-out table: throughput and CPU/GB vs the tokio fan-out proxy.
pub fn fanout(results: &[&RowResult]) -> String {
    table(results, ("fan-tokio", &[Row::FanTokio]), Row::FanTokio)
}

/// The goals, checked against the medians that exist.
pub fn goals(results: &[RowResult]) -> String {
    let med = |row: Row| {
        results
            .iter()
            .find(|r| r.row == row)
            .and_then(|r| Some((r.gbps()?.median, r.cpu_per_gb().map(|c| c.median))))
    };
    let best = |pred: fn(Row) -> bool| {
        results
            .iter()
            .filter(|r| pred(r.row))
            .filter_map(|r| Some((r.row, r.gbps()?.median)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    };
    let mut out = String::from("Goals (issue 7):\n");
    let verdict = |v: f64, goal: f64| if v >= goal { "met" } else { "not met" };
    let rl_single = |r: Row| matches!(r, Row::Ringleader { .. });
    match (best(rl_single), best(Row::peer)) {
        (Some((rl, a)), Some((peer, b))) => out.push_str(&format!(
            "  single stream: best ringleader ({}) / best peer ({}) = {} (goal >= 1.00x): {}\n",
            rl.name(),
            peer.name(),
            ratio(a / b),
            verdict(a / b, 1.0)
        )),
        _ => out.push_str("  single stream: no ringleader or no peer result\n"),
    }
    let rl_fan = |r: Row| matches!(r, Row::FanRingleader(_));
    match (best(rl_fan), med(Row::FanTokio)) {
        (Some((rl, a)), Some((b, _))) => out.push_str(&format!(
            "  fan-out: best ringleader ({}) / fan-tokio = {} (goal >= 1.50x): {}\n",
            rl.name(),
            ratio(a / b),
            verdict(a / b, 1.5)
        )),
        _ => out.push_str("  fan-out: no ringleader or no fan-tokio result\n"),
    }
    let tokio_cpu = med(Row::Tokio).and_then(|m| m.1);
    for r in results
        .iter()
        .filter(|r| matches!(r.row, Row::Ringleader { .. }))
    {
        if let (Some((_, Some(c))), Some(t)) = (med(r.row), tokio_cpu) {
            out.push_str(&format!(
                "  CPU/GB {} / tokio = {} (goal < 1.00x): {}\n",
                r.row.name(),
                ratio(c / t),
                if c < t { "met" } else { "not met" }
            ));
        }
    }
    out
}
