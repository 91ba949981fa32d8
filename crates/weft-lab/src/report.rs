//! The connectivity matrix: what each probe found against what the mode promises, as a
//! table for people (coloured on a terminal) and as JSON for scripts. Pure.

use crate::promise::{promise, Category, Design, Probe};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use weft_core::network::Family;

/// One probe's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    pub from: String,
    pub to: String,
    pub address: String,
    pub category: Category,
    pub family: Family,
    pub reached: bool,
    pub promised: bool,
}

impl Cell {
    pub fn holds(&self) -> bool {
        self.reached == self.promised
    }
}

/// One kind of path, summed up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub category: Category,
    pub family: Family,
    pub label: String,
    pub probes: usize,
    pub reached: usize,
    pub promised: bool,
    pub why: String,
    pub holds: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub lab: String,
    pub design: Design,
    /// Every promise holds.
    pub ok: bool,
    pub summary: Vec<Summary>,
    pub cells: Vec<Cell>,
}

impl Report {
    /// `found` is, for each probe, its target's address and whether it answered.
    pub fn new(lab: &str, design: Design, probes: &[Probe], found: &[(String, bool)]) -> Report {
        let cells: Vec<Cell> = probes
            .iter()
            .zip(found)
            .map(|(probe, (address, reached))| Cell {
                from: probe.from.clone(),
                to: probe.to.clone(),
                address: address.clone(),
                category: probe.category,
                family: probe.family,
                reached: *reached,
                promised: promise(design, probe.category, probe.family).reached,
            })
            .collect();
        // By family, then kind of path; each family's name in the labels when there are two.
        let mut by_category: BTreeMap<(Family, Category), Vec<&Cell>> = BTreeMap::new();
        for cell in &cells {
            by_category.entry((cell.family, cell.category)).or_default().push(cell);
        }
        let dual = cells.iter().any(|c| c.family != cells[0].family);
        let summary: Vec<Summary> = by_category
            .into_iter()
            .map(|((family, category), cells)| {
                let promise = promise(design, category, family);
                Summary {
                    category,
                    family,
                    label: if dual {
                        format!("{}, {family}", category.label())
                    } else {
                        category.label().into()
                    },
                    probes: cells.len(),
                    reached: cells.iter().filter(|c| c.reached).count(),
                    promised: promise.reached,
                    why: promise.why,
                    holds: cells.iter().all(|c| c.holds()),
                }
            })
            .collect();
        Report { lab: lab.to_string(), design, ok: cells.iter().all(Cell::holds), summary, cells }
    }

    pub fn broken(&self) -> impl Iterator<Item = &Cell> {
        self.cells.iter().filter(|c| !c.holds())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serialises")
    }
}

/// Terminal colours, or none.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    pub fn green(self, text: &str) -> String {
        self.paint("32", text)
    }
    pub fn red(self, text: &str) -> String {
        self.paint("1;31", text)
    }
    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }
}

/// Only this many destinations fit a terminal's width as a grid; beyond, the summary alone.
const GRID_MAX_COLUMNS: usize = 20;

const REACHED: &str = "✓";
const NOT_REACHED: &str = "·";
const BROKEN: &str = "✗";

/// The grid (who reaches whom), then one line per kind of path with its promise.
pub fn render(report: &Report, style: Style) -> String {
    let mut out = String::new();
    // Sources and destinations in the order the probes list them: pods, nodes, outside.
    let mut destinations: Vec<&str> = Vec::new();
    let mut sources: Vec<&str> = Vec::new();
    for cell in &report.cells {
        if !sources.contains(&cell.from.as_str()) {
            sources.push(&cell.from);
        }
    }
    for from in &sources {
        if !destinations.contains(from) && report.cells.iter().any(|c| c.to == *from) {
            destinations.push(from);
        }
    }
    for cell in &report.cells {
        if !destinations.contains(&cell.to.as_str()) {
            destinations.push(&cell.to);
        }
    }
    if destinations.len() <= GRID_MAX_COLUMNS {
        let row_width = sources.iter().map(|s| s.len()).max().unwrap_or(0).max("from \\ to".len());
        let _ = write!(out, "  {:<row_width$}", "from \\ to");
        for to in &destinations {
            let _ = write!(out, " {to:^w$}", w = to.len().max(3));
        }
        out.push('\n');
        for from in &sources {
            let _ = write!(out, "  {from:<row_width$}");
            for to in &destinations {
                let w = to.len().max(3);
                // Every family's probe of the pair: broken if one is.
                let cells: Vec<&Cell> =
                    report.cells.iter().filter(|c| c.from == *from && c.to == *to).collect();
                let mark = if cells.is_empty() {
                    " ".repeat(w)
                } else if cells.iter().any(|c| !c.holds()) {
                    style.red(&format!("{BROKEN:^w$}"))
                } else if cells.iter().all(|c| c.reached) {
                    style.green(&format!("{REACHED:^w$}"))
                } else {
                    style.dim(&format!("{NOT_REACHED:^w$}"))
                };
                let _ = write!(out, " {mark}");
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "  {} reached   {} not reached, as promised   {} not what the mode promises\n",
            style.green(REACHED),
            style.dim(NOT_REACHED),
            style.red(BROKEN)
        );
    } else {
        let _ = writeln!(
            out,
            "  {}\n",
            style.dim(&format!(
                "(the grid of who reaches whom is left out: {} destinations are more than {GRID_MAX_COLUMNS} \
                 columns; --json has every probe)",
                destinations.len()
            ))
        );
    }
    let digits = report.summary.iter().map(|s| s.probes.to_string().len()).max().unwrap_or(1).max(3);
    let label_width = report.summary.iter().map(|s| s.label.chars().count()).max().unwrap_or(0);
    let counts = 2 * digits + 1;
    let _ = writeln!(
        out,
        "  {}",
        style.dim(&format!(
            "{:<label_width$}  {:<counts$}  {:<8} {:<6}  why",
            "path", "reached", "promise", ""
        ))
    );
    for s in &report.summary {
        let count = format!("{:>digits$}/{:<digits$}", s.reached, s.probes);
        let promise = if s.promised { "reach" } else { "no reach" };
        let verdict = if s.holds { style.green("holds ") } else { style.red("BROKEN") };
        let pad = label_width - s.label.chars().count();
        let _ = writeln!(
            out,
            "  {}{}  {count}  {promise:<8} {verdict}  {}",
            s.label,
            " ".repeat(pad),
            style.dim(&s.why)
        );
    }
    let broken: Vec<&Cell> = report.broken().collect();
    if broken.is_empty() {
        let _ = writeln!(out, "\n  {}", style.green(&format!("every promise of {} holds", report.design)));
    } else {
        let probes = if broken.len() == 1 { "probe" } else { "probes" };
        let _ = writeln!(out, "\n  {}", style.red(&format!("{} {probes} broke a promise:", broken.len())));
        for cell in broken {
            let _ = writeln!(
                out,
                "    {} → {} ({}): {}, but {} {}",
                cell.from,
                cell.to,
                cell.address,
                if cell.reached { "reached" } else { "not reached" },
                report.design,
                if cell.promised { "promises it" } else { "promises it is not" }
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promise::probes;
    use crate::topology::{LabSpec, Mode, Topology};

    fn report(mode: Mode, reached: impl Fn(&Probe) -> bool) -> Report {
        let topology = Topology::of(&LabSpec::new("t", mode));
        let design = Design::of(&topology);
        let probes = probes(&topology);
        let found: Vec<(String, bool)> =
            probes.iter().map(|p| ("10.244.0.2".to_string(), reached(p))).collect();
        Report::new("t", design, &probes, &found)
    }

    #[test]
    fn a_route_lab_that_behaves_holds_every_promise() {
        let design = Design { mode: Mode::Route, gateways: 0, client: false };
        let r = report(Mode::Route, |p| promise(design, p.category, p.family).reached);
        assert!(r.ok);
        let text = render(&r, Style { color: false });
        assert!(text.contains("pod → pod, other rack"), "{text}");
        assert!(text.contains("  0/32   no reach holds"), "{text}");
        assert!(text.contains("every promise of route mode holds"), "{text}");
        assert!(!text.contains('\x1b'), "plain when not on a terminal");
    }

    #[test]
    fn one_unexpected_outcome_breaks_the_report_and_is_named() {
        let r = report(Mode::Vxlan, |p| {
            !(p.from == "n1-p1" && p.to == "n3-p2") && p.to != "n2-p1" || p.from == "outside"
        });
        assert!(!r.ok);
        let text = render(&r, Style { color: true });
        assert!(
            text.contains("n1-p1 → n3-p2 (10.244.0.2): not reached, but vxlan mode promises it"),
            "{text}"
        );
        assert!(
            text.contains("outside → n1-p1 (10.244.0.2): reached, but vxlan mode promises it is not"),
            "{text}"
        );
        assert!(text.contains("\x1b[1;31mBROKEN"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["ok"], false);
        assert_eq!(json["design"]["mode"], "vxlan");
        assert!(json["cells"].as_array().unwrap().iter().any(|c| c["category"] == "pod-to-pod-other-rack"));
    }
}
