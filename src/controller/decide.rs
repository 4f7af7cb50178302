//! What to do with an image set now, from what the reconcile sees: the object, the run under
//! way, how the last run ended, and the clock. Pure: no client, no clock of its own.

use std::time::{Duration, Instant};

use super::run::LastRun;

/// The run under way for an image set, as seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunSeen {
    /// The generation it runs for.
    pub generation: Option<i64>,
    /// Whether its task has ended.
    pub finished: bool,
}

/// Everything a decision depends on.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The object is being deleted.
    pub deleting: bool,
    /// The spec's first problem, naming the field.
    pub spec: Result<(), String>,
    /// The object's generation.
    pub generation: Option<i64>,
    /// The run under way, if any.
    pub run: Option<RunSeen>,
    /// How the last run ended.
    pub last: Option<LastRun>,
    /// The resync interval (after a complete run).
    pub resync: Duration,
    /// The retry interval (after a failed run; doubled per failure in a row).
    pub retry: Duration,
    /// Now.
    pub now: Instant,
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Stop any run, remove what the image set produced, release the finalizer.
    CleanUp,
    /// Stop any run and report the spec's problem; wait for a change.
    Invalid(String),
    /// A run of this generation is under way: report its progress.
    Poll,
    /// A run of this generation has ended: take its result.
    Take,
    /// Nothing to do until then.
    Wait(Duration),
    /// Nothing to do until the spec changes (the last run failed in a way retrying cannot fix).
    AwaitChange,
    /// Start a run (stopping a run of an older generation first).
    Start,
}

impl Seen {
    /// A run under way for another generation (to be stopped whatever is decided).
    pub fn stale_run(&self) -> bool {
        self.run.is_some_and(|r| r.generation != self.generation)
    }
}

/// The decision. Pure.
pub fn decide(s: &Seen) -> Decision {
    if s.deleting {
        return Decision::CleanUp;
    }
    if let Err(m) = &s.spec {
        return Decision::Invalid(m.clone());
    }
    match s.run {
        Some(r) if r.generation == s.generation && !r.finished => return Decision::Poll,
        Some(r) if r.generation == s.generation => return Decision::Take,
        _ => {}
    }
    match s.last.filter(|l| l.generation == s.generation) {
        Some(l) => after(&l, s.resync, s.retry, s.now),
        None => Decision::Start,
    }
}

/// What follows a run of this generation that ended as `last` says. Pure.
pub fn after(last: &LastRun, resync: Duration, retry: Duration, now: Instant) -> Decision {
    if last.permanent {
        return Decision::AwaitChange;
    }
    let due = last.due(resync, retry);
    if now < due { Decision::Wait(due - now) } else { Decision::Start }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(now: Instant) -> Seen {
        Seen {
            deleting: false,
            spec: Ok(()),
            generation: Some(2),
            run: None,
            last: None,
            resync: Duration::from_secs(3600),
            retry: Duration::from_secs(60),
            now,
        }
    }

    #[test]
    fn deletion_and_invalid_specs_come_before_any_run() {
        let now = Instant::now();
        let running = Some(RunSeen { generation: Some(2), finished: false });
        assert_eq!(decide(&Seen { deleting: true, run: running, ..seen(now) }), Decision::CleanUp);
        let bad = Seen { spec: Err("spec.resyncInterval: too long".into()), run: running, ..seen(now) };
        assert_eq!(decide(&bad), Decision::Invalid("spec.resyncInterval: too long".into()));
    }

    #[test]
    fn a_run_of_this_generation_is_polled_then_taken_and_one_of_another_is_replaced() {
        let now = Instant::now();
        let run = |generation, finished| Some(RunSeen { generation: Some(generation), finished });
        assert_eq!(decide(&Seen { run: run(2, false), ..seen(now) }), Decision::Poll);
        assert_eq!(decide(&Seen { run: run(2, true), ..seen(now) }), Decision::Take);
        let stale = Seen { run: run(1, false), ..seen(now) };
        assert!(stale.stale_run());
        assert_eq!(decide(&stale), Decision::Start);
    }

    #[test]
    fn after_a_run_it_waits_for_resync_or_backoff_and_a_permanent_failure_waits_for_a_change() {
        let now = Instant::now();
        let ok = LastRun { generation: Some(2), at: now, failures: 0, permanent: false };
        assert_eq!(decide(&Seen { last: Some(ok), ..seen(now) }), Decision::Wait(Duration::from_secs(3600)));
        let failed = LastRun { failures: 2, ..ok };
        assert_eq!(decide(&Seen { last: Some(failed), ..seen(now) }), Decision::Wait(Duration::from_secs(120)));
        let later = now + Duration::from_secs(121);
        assert_eq!(decide(&Seen { last: Some(failed), ..seen(later) }), Decision::Start);
        let permanent = LastRun { permanent: true, ..failed };
        assert_eq!(decide(&Seen { last: Some(permanent), ..seen(later) }), Decision::AwaitChange);
        // A run of an older generation says nothing about this one.
        let old = LastRun { generation: Some(1), permanent: true, ..failed };
        assert_eq!(decide(&Seen { last: Some(old), ..seen(now) }), Decision::Start);
    }
}
