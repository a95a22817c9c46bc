//! The pipeline, as one library call: collect a snapshot of each namespace
//! the [`Plan`] names, diagnose it against that namespace's sample
//! [`Window`], narrow it by the filters. A sampled run and the live view are
//! the same loop — [`Pipeline::refresh`] once per sample — so both show
//! growth. Nothing here prints, and nothing here knows the command line.

mod every_netns;

use crate::call_sites::Trace;
use crate::collect::{CollectError, Collector, netns};
use crate::diagnose::Window;
use crate::plan::{Plan, Scope};
use crate::render::text::escape;
use crate::report::{Labelled, Report};
use crate::snapshot::{LoadError, Snapshot};
use std::collections::BTreeMap;
use std::path::Path;

/// One namespace's newest sample and its report.
#[derive(Debug)]
pub struct Diagnosed {
    /// The namespace's label when the plan names namespaces (`None`: here, or a saved snapshot).
    pub label: Option<String>,
    pub snapshot: Snapshot,
    pub report: Report,
}

/// What one refresh found.
#[derive(Debug, Default)]
pub struct Refresh {
    pub namespaces: Vec<Diagnosed>,
    /// Namespaces that could not be read with `--all-netns` (they may have
    /// gone meanwhile), with the reason; the others are still reported.
    pub skipped: Vec<(String, PipelineError)>,
}

impl Refresh {
    /// One line for each namespace skipped, saying why, its strings escaped:
    /// for stderr.
    pub fn skipped_lines(&self) -> impl Iterator<Item = String> + '_ {
        self.skipped.iter().map(|(label, e)| {
            format!(
                "connleak: skipped namespace {}: {}",
                escape(label),
                escape(&e.to_string())
            )
        })
    }

    /// The reports with their labels, as the renderers take them.
    pub fn labelled(&self) -> Vec<Labelled<'_>> {
        self.namespaces
            .iter()
            .map(|d| Labelled {
                label: d.label.as_deref(),
                report: &d.report,
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("collecting the socket table: {0}")]
    Collect(#[from] CollectError),
    #[error(transparent)]
    Enter(#[from] netns::NetnsError),
    #[error("in network namespace {label}: {source}")]
    InNamespace {
        label: String,
        source: Box<PipelineError>,
    },
    #[error("internal error: collection in namespace {0} panicked")]
    Panicked(String),
    #[error("no network namespace could be read")]
    NoNamespace,
}

/// `collect` run in `target`'s namespace: `setns` moves one thread, so a
/// fresh one enters, collects, and ends.
fn in_namespace<T: Send>(
    target: &netns::Target,
    root: &Path,
    collect: impl FnOnce() -> Result<T, CollectError> + Send,
) -> Result<T, PipelineError> {
    let label = target.label();
    let collected = std::thread::scope(|s| {
        s.spawn(|| -> Result<T, PipelineError> {
            netns::enter(target, root)?;
            Ok(collect()?)
        })
        .join()
    })
    .map_err(|_| PipelineError::Panicked(label.clone()))?;
    collected.map_err(|e| PipelineError::InNamespace {
        label,
        source: Box::new(e),
    })
}

/// A plan being carried out: the windows of earlier samples, per namespace.
pub struct Pipeline {
    plan: Plan,
    collector: Collector,
    windows: BTreeMap<Option<String>, Window>,
    /// The tracer of a traced run, kept from one refresh to the next.
    trace: Option<Trace>,
}

impl Pipeline {
    pub fn new(plan: Plan) -> Pipeline {
        let collector = Collector::new(plan.source, plan.fd_scan, &plan.host_root);
        Pipeline {
            plan,
            collector,
            windows: BTreeMap::new(),
            trace: None,
        }
    }

    /// The same pipeline with the tracer on when `on` (and the plan reads
    /// the live system): each refresh's findings are given the call sites
    /// the trace saw. When the tracer cannot start, the pipeline as it was
    /// and one line saying why.
    pub fn tracing(self, on: bool) -> (Pipeline, Option<String>) {
        if !on {
            return (self, None);
        }
        if matches!(self.plan.scope, Scope::Saved(_)) {
            let why = "no call sites: a saved snapshot (--from) was not traced";
            return (self, Some(why.to_string()));
        }
        match Trace::start(self.plan.host_root.join("proc")) {
            Ok(trace) => (
                Pipeline {
                    trace: Some(trace),
                    ..self
                },
                None,
            ),
            Err(why) => (self, Some(why)),
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Takes the plan's samples, `interval` apart, and returns the last
    /// refresh: its findings carry their trend over the whole window.
    pub fn run(&mut self) -> Result<Refresh, PipelineError> {
        let mut last = self.refresh()?;
        for _ in 1..self.plan.samples {
            std::thread::sleep(self.plan.interval);
            last = self.refresh()?;
        }
        Ok(last)
    }

    /// One sample of every namespace of the plan, each diagnosed against its
    /// window. The windows of namespaces that are gone are dropped: on a host
    /// whose pods come and go, a long-running loop would otherwise keep one
    /// per namespace that ever existed.
    pub fn refresh(&mut self) -> Result<Refresh, PipelineError> {
        let mut refresh = Refresh::default();
        let targets = self.targets();
        let labels: Vec<Option<String>> = targets
            .iter()
            .map(|t| t.as_ref().map(netns::Target::label))
            .collect();
        self.windows.retain(|label, _| labels.contains(label));
        let collected = self.collect_all(&targets);
        for ((target, label), collected) in targets.into_iter().zip(labels).zip(collected) {
            // Another namespace than connleak's own may be a container's or a pod's.
            let foreign = self.plan.scope == Scope::AllNetns && target != Some(netns::Target::Own);
            match collected {
                Ok(snapshot) => {
                    // Its `ip netns` name, as the report calls it, wherever it was reached from.
                    let label = label.map(|l| snapshot.meta.netns.name.clone().unwrap_or(l));
                    let report = self.diagnose(label.clone(), &snapshot, foreign);
                    refresh.namespaces.push(Diagnosed {
                        label,
                        snapshot,
                        report,
                    });
                }
                Err(e) if self.plan.scope == Scope::AllNetns => {
                    refresh.skipped.push((label.unwrap_or_default(), e));
                }
                Err(e) => return Err(e),
            }
        }
        if refresh.namespaces.is_empty() {
            return Err(PipelineError::NoNamespace);
        }
        if let Some(trace) = &mut self.trace {
            let namespaces = refresh
                .namespaces
                .iter_mut()
                .map(|d| (&d.snapshot, &mut d.report));
            crate::timings::phase("call sites", || trace.annotate(namespaces.collect()));
        }
        Ok(refresh)
    }

    /// The namespaces to read now (`None`: this one, or the saved snapshot).
    fn targets(&self) -> Vec<Option<netns::Target>> {
        match &self.plan.scope {
            Scope::Here | Scope::Saved(_) => vec![None],
            Scope::Netns(name) => vec![Some(netns::Target::Named(name.clone()))],
            Scope::NetnsOfPid(pid) => vec![Some(netns::Target::OfPid(*pid))],
            Scope::AllNetns => netns::all(&self.plan.host_root)
                .into_iter()
                .map(Some)
                .collect(),
        }
    }

    /// Every target's snapshot (or why it could not be taken), in their order.
    fn collect_all(
        &self,
        targets: &[Option<netns::Target>],
    ) -> Vec<Result<Snapshot, PipelineError>> {
        let every: Option<Vec<netns::Target>> = targets.iter().cloned().collect();
        match every {
            Some(every) if self.plan.scope == Scope::AllNetns => {
                every_netns::collect(&self.collector, &self.plan.host_root, &every)
            }
            _ => targets.iter().map(|t| self.collect(t.as_ref())).collect(),
        }
    }

    fn collect(&self, target: Option<&netns::Target>) -> Result<Snapshot, PipelineError> {
        if let Scope::Saved(path) = &self.plan.scope {
            return Ok(Snapshot::load(path)?);
        }
        match target {
            None => Ok(self.collector.collect()?),
            Some(target) => in_namespace(target, &self.plan.host_root, || self.collector.collect()),
        }
    }

    /// The report of a namespace's newest sample: diagnosed against its
    /// window, remembered in it (unless a single sample was asked for: the
    /// window would never be read, and it holds every socket's cookie), then
    /// narrowed by the filters. `foreign`: label it by the workload that owns
    /// it, if one does.
    fn diagnose(&mut self, label: Option<String>, snapshot: &Snapshot, foreign: bool) -> Report {
        let remember = self.plan.samples > 1;
        let keep = self.plan.samples.max(2) as usize;
        let window = self
            .windows
            .entry(label)
            .or_insert_with(|| Window::keeping(keep));
        crate::timings::phase("diagnosis", || {
            let mut report = Report::build_in(snapshot, self.plan.thresholds, window);
            if remember {
                report.record(snapshot, window);
            }
            if foreign {
                report.label_namespace();
            }
            self.plan.filter.narrow(&mut report, snapshot);
            report
        })
    }
}
