//! A sync run's mode, trigger and status: stored and served as lowercase words, handled as
//! enums so that a misspelt status cannot compile.

use std::fmt;

/// Full (every page, every missing detail) or incremental (stop at known shipments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Full,
    Incremental,
}

impl Mode {
    pub fn parse(value: &str) -> Result<Mode, String> {
        match value {
            "full" => Ok(Mode::Full),
            "incremental" => Ok(Mode::Incremental),
            _ => Err("must be full or incremental".into()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Incremental => "incremental",
        }
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Api,
    Schedule,
    Cli,
}

impl Trigger {
    pub fn parse(value: &str) -> Result<Trigger, String> {
        match value {
            "api" => Ok(Trigger::Api),
            "schedule" => Ok(Trigger::Schedule),
            "cli" => Ok(Trigger::Cli),
            _ => Err("must be api, schedule or cli".into()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Api => "api",
            Trigger::Schedule => "schedule",
            Trigger::Cli => "cli",
        }
    }
}

/// Where a run is in its life: queued and running are active, the other three are ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn parse(value: &str) -> Result<RunStatus, String> {
        match value {
            "queued" => Ok(RunStatus::Queued),
            "running" => Ok(RunStatus::Running),
            "succeeded" => Ok(RunStatus::Succeeded),
            "failed" => Ok(RunStatus::Failed),
            "cancelled" => Ok(RunStatus::Cancelled),
            _ => Err("must be queued, running, succeeded, failed or cancelled".into()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Still to be driven: a worker may claim it, a seller may cancel it.
    pub fn is_active(self) -> bool {
        matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}

macro_rules! display_as_str {
    ($($name:ty),*) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

display_as_str!(Mode, Trigger, RunStatus);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_what_it_writes() {
        for status in [
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Cancelled,
        ] {
            assert_eq!(RunStatus::parse(status.as_str()), Ok(status));
        }
        assert!(RunStatus::parse("done").is_err());
    }

    #[test]
    fn only_queued_and_running_are_active() {
        assert!(RunStatus::Queued.is_active() && RunStatus::Running.is_active());
        assert!(!RunStatus::Succeeded.is_active());
        assert!(!RunStatus::Failed.is_active() && !RunStatus::Cancelled.is_active());
    }

    #[test]
    fn modes_and_triggers_read_back_what_they_write() {
        for mode in [Mode::Full, Mode::Incremental] {
            assert_eq!(Mode::parse(mode.as_str()), Ok(mode));
        }
        for trigger in [Trigger::Api, Trigger::Schedule, Trigger::Cli] {
            assert_eq!(Trigger::parse(trigger.as_str()), Ok(trigger));
        }
        assert!(Mode::parse("Full").is_err());
    }
}
