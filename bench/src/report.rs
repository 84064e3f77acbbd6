//! What a suite produces: one [`Outcome`] per scenario and system (the median and min–max of
//! each metric over the runs, and every run's detail), the targets beside their measured
//! figures, the table printed for people, and `bench/results/latest.json`.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::stats::Spread;

/// One metric of one run.
pub type Metrics = Vec<(String, f64)>;

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub scenario: &'static str,
    pub system: &'static str,
    pub db: Option<&'static str>,
    pub params: Value,
    /// metric → {median, min, max} over the runs, in the order the scenario reports them.
    pub summary: Map<String, Value>,
    pub runs: Vec<Value>,
    pub notes: Vec<String>,
    pub error: Option<String>,
}

impl Outcome {
    pub fn new(
        scenario: &'static str,
        system: &'static str,
        db: Option<&'static str>,
        params: Value,
    ) -> Self {
        Outcome {
            scenario,
            system,
            db,
            params,
            summary: Map::new(),
            runs: Vec::new(),
            notes: Vec::new(),
            error: None,
        }
    }

    /// Adds a run: its headline metrics and its full detail.
    pub fn add_run(&mut self, metrics: &Metrics, detail: Value) {
        let mut run = Map::new();
        for (name, value) in metrics {
            run.insert(name.clone(), json!(value));
        }
        run.insert("detail".into(), detail);
        self.runs.push(Value::Object(run));
    }

    /// Computes the summary from the runs.
    pub fn finish(&mut self) {
        let mut names: Vec<String> = Vec::new();
        for run in &self.runs {
            for key in run.as_object().into_iter().flat_map(|o| o.keys()) {
                if key != "detail" && !names.contains(key) {
                    names.push(key.clone());
                }
            }
        }
        self.summary.clear();
        for name in names {
            let values = self
                .runs
                .iter()
                .filter_map(|r| r.get(&name).and_then(Value::as_f64));
            if let Some(spread) = Spread::of(values) {
                self.summary.insert(name, json!(spread));
            }
        }
    }

    pub fn median(&self, metric: &str) -> Option<f64> {
        self.summary.get(metric)?.get("median")?.as_f64()
    }
}

/// A target from issue 7 beside what was measured.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub target: String,
    pub measured: String,
    /// measured ÷ target, oriented so that ≥ 1 meets it.
    pub ratio: Option<f64>,
    pub met: Option<bool>,
    pub note: String,
}

fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        let s = format!("{:.0}", v);
        // Thousands separators for readability.
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub fn format_spread(s: &Value) -> (String, String) {
    let g = |k: &str| s.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let (median, min, max) = (g("median"), g("min"), g("max"));
    let spread = if (max - min).abs() < f64::EPSILON {
        "-".to_string()
    } else {
        format!("{}–{}", number(min), number(max))
    };
    (number(median), spread)
}

/// The table for people.
pub fn table(outcomes: &[Outcome], targets: &[Target]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<14} {:<11} {:<8} {:<36} {:>12}  min–max",
        "scenario", "system", "db", "metric", "median"
    );
    let _ = writeln!(out, "{}", "-".repeat(100));
    for o in outcomes {
        let db = o.db.unwrap_or("-");
        if let Some(error) = &o.error {
            let _ = writeln!(
                out,
                "{:<14} {:<11} {:<8} FAILED: {}",
                o.scenario, o.system, db, error
            );
        }
        for (metric, spread) in &o.summary {
            let (median, range) = format_spread(spread);
            let _ = writeln!(
                out,
                "{:<14} {:<11} {:<8} {:<36} {:>12}  {}",
                o.scenario, o.system, db, metric, median, range
            );
        }
        for note in &o.notes {
            let _ = writeln!(
                out,
                "{:<14} {:<11} {:<8} note: {}",
                o.scenario, o.system, db, note
            );
        }
    }
    if !targets.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<44} {:<22} {:<26} {:>7}  met",
            "target", "wanted", "measured", "ratio"
        );
        let _ = writeln!(out, "{}", "-".repeat(108));
        for t in targets {
            let ratio = t.ratio.map_or("-".to_string(), |r| format!("{r:.2}"));
            let met = match t.met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "n/a",
            };
            let _ = writeln!(
                out,
                "{:<44} {:<22} {:<26} {:>7}  {}{}",
                t.name,
                t.target,
                t.measured,
                ratio,
                met,
                if t.note.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", t.note)
                }
            );
        }
    }
    out
}

/// Writes `path` atomically (through a `.tmp` beside it).
pub fn write_json(path: &Path, value: &Value) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(value)? + "\n")?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_the_median_of_runs() {
        let mut o = Outcome::new("relay", "wrenchline", None, json!({}));
        for v in [10.0, 30.0, 20.0] {
            o.add_run(&vec![("msgs/s".to_string(), v)], json!({}));
        }
        o.finish();
        assert_eq!(o.median("msgs/s"), Some(20.0));
        assert_eq!(
            format_spread(&o.summary["msgs/s"]),
            ("20.0".into(), "10.0–30.0".into())
        );
        assert_eq!(number(1234567.0), "1,234,567");
    }
}
