//! The desktop app beside its baseline, a bare Tauri window built the same way
//! (bench/desk-baseline): the sizes of the release binary and of the .deb, launch to first window
//! and to interactive, and idle memory. `scripts/measure-desk.sh --build-only` builds both apps
//! into one folder (`wrenchline`, `baseline` and their `.deb`s), given here as `--desk-dir`; each
//! run launches both, one after the other, through `tests/desktop/measure.sh` under a fresh Xvfb,
//! session D-Bus and keyring, so every run has its own side-by-side ratio.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::json;

use super::Env;
use crate::report::{Metrics, Outcome};

/// The two apps: the label `measure.sh` prints and the system name in the results.
const APPS: [(&str, &str); 2] = [("wrenchline", "wrenchline"), ("baseline", "bare-tauri")];

pub const WINDOW: &str = "launch to window ms";
pub const INTERACTIVE: &str = "launch to interactive ms";
pub const INTERACTIVE_RATIO: &str = "interactive vs bare (x)";
pub const BINARY: &str = "binary MiB";
pub const DEB: &str = ".deb MiB";

/// One launch as `measure.sh` prints it: `label run map_ms ready_ms pss_MiB …`.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub label: String,
    pub window_ms: Option<f64>,
    pub interactive_ms: Option<f64>,
    pub pss_mib: f64,
}

/// The launches in `measure.sh`'s output (its header, size lines and anything else skipped).
pub fn parse(output: &str) -> Vec<Launch> {
    output
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 5 || f[1].parse::<u32>().is_err() {
                return None;
            }
            Some(Launch {
                label: f[0].to_string(),
                window_ms: f[2].parse().ok(),
                interactive_ms: f[3].parse().ok(),
                pss_mib: f[4].parse().ok()?,
            })
        })
        .collect()
}

fn mib(path: &Path) -> anyhow::Result<f64> {
    let len = std::fs::metadata(path)
        .with_context(|| {
            format!(
                "{}: build it with scripts/measure-desk.sh --build-only",
                path.display()
            )
        })?
        .len();
    Ok(len as f64 / 1_048_576.0)
}

async fn launch_both(dir: &Path, script: &Path) -> anyhow::Result<Vec<Launch>> {
    let mut cmd = tokio::process::Command::new(script);
    cmd.env("RUNS", "1").kill_on_drop(true);
    for (label, _) in APPS {
        cmd.arg(format!("{label}={}", dir.join(label).display()));
    }
    let out = cmd
        .output()
        .await
        .with_context(|| format!("starting {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} exited with {}: {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let launches = parse(&String::from_utf8_lossy(&out.stdout));
    for (label, _) in APPS {
        match launches.iter().find(|l| l.label == label) {
            None => bail!("{}: no launch of {label} in its output", script.display()),
            Some(l) if l.window_ms.is_none() => bail!("{label}: no window within 15 s"),
            Some(_) => {}
        }
    }
    Ok(launches)
}

pub async fn desk(env: &Env, dir: &Path) -> Vec<Outcome> {
    let script = PathBuf::from("tests/desktop/measure.sh");
    let mut outcomes: Vec<Outcome> = APPS
        .iter()
        .map(|(label, system)| {
            Outcome::new(
                "desktop",
                system,
                None,
                json!({ "binary": dir.join(label), "deb": dir.join(format!("{label}.deb")) }),
            )
        })
        .collect();
    let sizes: anyhow::Result<Vec<(f64, f64)>> = APPS
        .iter()
        .map(|(label, _)| {
            Ok((
                mib(&dir.join(label))?,
                mib(&dir.join(format!("{label}.deb")))?,
            ))
        })
        .collect();
    let sizes = match sizes {
        Ok(s) => s,
        Err(e) => {
            for o in &mut outcomes {
                o.error = Some(format!("{e:#}"));
            }
            return outcomes;
        }
    };
    for run in 0..env.sizes.runs {
        eprintln!("desktop: run {}", run + 1);
        let launches = match launch_both(dir, &script).await {
            Ok(l) => l,
            Err(e) => {
                for o in &mut outcomes {
                    o.error = Some(format!("run {}: {e:#}", run + 1));
                }
                break;
            }
        };
        let of = |label: &str| launches.iter().find(|l| l.label == label).cloned();
        let (Some(app), Some(bare)) = (of(APPS[0].0), of(APPS[1].0)) else {
            continue;
        };
        for (i, launch) in [&app, &bare].into_iter().enumerate() {
            let mut m: Metrics = vec![(WINDOW.into(), launch.window_ms.unwrap_or(f64::NAN))];
            if let Some(ms) = launch.interactive_ms {
                m.push((INTERACTIVE.into(), ms));
            }
            m.push(("idle PSS MiB".into(), launch.pss_mib));
            m.push((BINARY.into(), sizes[i].0));
            m.push((DEB.into(), sizes[i].1));
            if i == 0 {
                if let (Some(a), Some(b)) = (app.interactive_ms, bare.interactive_ms) {
                    m.push((INTERACTIVE_RATIO.into(), a / b.max(1.0)));
                }
            }
            outcomes[i].add_run(&m, json!({ "run": run + 1 }));
        }
    }
    for o in &mut outcomes {
        o.finish();
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_launches_and_skips_the_rest() {
        let out = "binary       run      map_ms     ready_ms    pss_MiB pss by process (KiB)\n\
                   wrenchline   1           123          302      288.1 wrenchline-desk:91231 \n\
                   wrenchline   size 18544032 bytes (17.68 MiB)\n\
                   baseline     1             ?            -      252.6 wrenchline-desk:78481 \n";
        let l = parse(out);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].label, "wrenchline");
        assert_eq!(l[0].window_ms, Some(123.0));
        assert_eq!(l[0].interactive_ms, Some(302.0));
        assert_eq!(l[1].window_ms, None);
        assert_eq!(l[1].interactive_ms, None);
        assert!((l[1].pss_mib - 252.6).abs() < 1e-9);
    }
}
