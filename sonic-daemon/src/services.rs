//! The production `ServiceManager`: `systemctl` with argv lists and enforced timeouts, and the
//! production `Clock`.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sonic_feature_core::model::{FeatureName, Timestamp};
use sonic_feature_core::ports::{Clock, PortError, ServiceManager};
use sonic_kube_adapter::run_program;

use crate::instances::Instances;
use crate::settings::SystemctlTimeouts;

/// Feature units through `systemctl` (upstream `restart_systemd_service`, `is_systemd_active`).
#[derive(Debug, Clone)]
pub struct SystemctlServices {
    program: PathBuf,
    timeouts: SystemctlTimeouts,
    instances: Instances,
}

impl SystemctlServices {
    /// `program` is `systemctl` (or a replacement); instances map to `<feature>@<asic>` units.
    pub fn new(program: PathBuf, timeouts: SystemctlTimeouts, instances: Instances) -> Self {
        Self {
            program,
            timeouts,
            instances,
        }
    }

    /// Runs `systemctl <args>` (through the workspace's one runner) and returns its exit code;
    /// a failure to start, a timeout or a death by signal is a transient error naming the
    /// command.
    async fn run(&self, args: &[&str], timeout: Duration) -> Result<i32, PortError> {
        let mut argv: Vec<&OsStr> = vec![self.program.as_os_str()];
        argv.extend(args.iter().map(OsStr::new));
        let out = run_program(&argv, timeout)
            .await
            .map_err(|e| PortError::transient(e.to_string()))?;
        // run_program always sets the code (a signal is an error); -1 only keeps this total.
        Ok(out.code.unwrap_or(-1))
    }
}

#[async_trait]
impl ServiceManager for SystemctlServices {
    async fn restart(&self, f: &FeatureName) -> Result<(), PortError> {
        let unit = self.instances.unit(f);
        // Bypasses StartLimitBurst (#15432); its failure does not prevent the restart.
        let _ = self
            .run(&["reset-failed", &unit], self.timeouts.query)
            .await?;
        match self.run(&["restart", &unit], self.timeouts.restart).await? {
            0 => Ok(()),
            code => Err(PortError::transient(format!(
                "systemctl restart {unit} exited with {code}"
            ))),
        }
    }

    async fn is_active(&self, f: &FeatureName) -> Result<bool, PortError> {
        let unit = self.instances.unit(f);
        Ok(self
            .run(&["is-active", "--quiet", &unit], self.timeouts.query)
            .await?
            == 0)
    }
}

/// Monotonic time since the switch booted (`CLOCK_BOOTTIME` when the daemon started, then
/// the monotonic clock), and local wall-clock time. Counting from the boot rather than from the
/// daemon's start keeps the manager's persisted clocks (`CTRMGRD_STATE|CLOCKS`) valid for the
/// next daemon process.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    start: Instant,
    since_boot: Duration,
}

impl SystemClock {
    /// A clock reading the time since boot now (zero if the kernel cannot tell).
    pub fn new() -> Self {
        let since_boot = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
            .map(Duration::from)
            .unwrap_or_default();
        Self {
            start: Instant::now(),
            since_boot,
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let t = self.since_boot + self.start.elapsed();
        Timestamp::from_millis(u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
    }

    fn wall_time(&self) -> String {
        jiff::Zoned::now().strftime("%Y-%m-%d %H:%M:%S").to_string()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn f(s: &str) -> FeatureName {
        FeatureName::parse(s).unwrap()
    }

    #[tokio::test]
    async fn exit_codes_of_systemctl_become_answers() {
        // `true` and `false` stand in for systemctl: they ignore their arguments.
        let ok = SystemctlServices::new(
            "true".into(),
            SystemctlTimeouts::default(),
            Instances::default(),
        );
        assert!(ok.is_active(&f("snmp")).await.unwrap());
        ok.restart(&f("snmp")).await.unwrap();
        let bad = SystemctlServices::new(
            "false".into(),
            SystemctlTimeouts::default(),
            Instances::default(),
        );
        assert!(!bad.is_active(&f("snmp")).await.unwrap());
        let e = bad.restart(&f("snmp")).await.unwrap_err();
        assert!(e.to_string().contains("restart snmp"), "{e}");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_transient_error_naming_it() {
        let s = SystemctlServices::new(
            "/nonexistent/systemctl".into(),
            SystemctlTimeouts::default(),
            Instances::default(),
        );
        let e = s.is_active(&f("snmp")).await.unwrap_err();
        assert!(e.is_transient());
        assert!(e.to_string().contains("/nonexistent/systemctl"), "{e}");
    }

    #[test]
    fn the_clock_counts_from_the_boot_so_two_processes_agree() {
        let uptime: f64 = std::fs::read_to_string("/proc/uptime")
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let a = SystemClock::new().now().as_millis();
        let b = SystemClock::new().now().as_millis();
        // Both near the uptime (which has a 10 ms resolution), not near zero.
        let up = (uptime * 1000.0) as u64;
        assert!(a + 1000 >= up && a <= up + 1000, "{a} vs uptime {up}");
        assert!(b >= a && b - a < 1000, "{a} {b}");
    }

    #[test]
    fn wall_time_has_upstream_format() {
        let t = SystemClock::new().wall_time();
        assert_eq!(t.len(), 19, "{t}");
        assert_eq!(&t[4..5], "-");
        assert_eq!(&t[10..11], " ");
    }
}
