//! `container wait` after a cold boot, through the built `container` binary against a private
//! redis-server and the shared private dockerd: STATE_DB is empty while the feature's old local
//! container still exists, stopped. For a kube-owned feature without fallback `container start`
//! does not run it, and `container wait` must poll for the deployment instead of ending at once
//! on the stopped container (which made the unit restart in a loop); it then follows the pod's
//! container. A locally run container that died still ends the wait at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod container_common;

use std::process::Child;
use std::time::{Duration, Instant};

use container_common::{
    IMAGE_VERSION, Lab, assert_status, block_on, finish, plain_image, stderr, unique_feature,
    wait_for,
};

/// A `container wait` in the background, killed if the test fails before collecting it.
struct Waiter(Option<Child>);

impl Waiter {
    fn has_exited(&mut self) -> bool {
        self.0
            .as_mut()
            .expect("waiter still owned")
            .try_wait()
            .expect("try_wait of container wait")
            .is_some()
    }

    fn finish(mut self, timeout: Duration) -> std::process::Output {
        finish(self.0.take().expect("waiter still owned"), timeout)
            .expect("container wait must end")
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The feature's local container as a cold reboot leaves it: created, run once, stopped.
fn stopped_local_container(lab: &Lab, f: &str) {
    lab.create_container(f, plain_image(), &[]);
    lab.start_container(f);
    block_on(lab.docker().stop_container(f, Some(Duration::from_secs(5))))
        .expect("stop of the local container");
    let c = lab.inspect(f);
    assert!(!c.running, "{c:?}");
    assert_eq!(c.status, "exited");
}

#[test]
fn cold_boot_wait_of_kube_feature_without_fallback_polls_then_follows_the_pod() {
    let lab = Lab::new();
    let f = unique_feature("snmp");
    lab.config(
        &f,
        &[("set_owner", "kube"), ("no_fallback_to_local", "true")],
    );
    // A short revert deadline: it must not apply without fallback.
    lab.remote_ctr_config(r#"{"revert_to_local_on_wait_seconds": 1}"#);
    stopped_local_container(&lab, &f);
    assert!(lab.state(&f).is_empty(), "STATE_DB is empty after a reboot");

    // The unit: ExecStartPre `container start`, ExecStart `container wait`.
    let out = lab.container(&["start", &f]);
    assert_status(&out, 0);
    let st = lab.state(&f);
    Lab::assert_subset(&st, &[("system_state", "up")]);
    assert!(!st.contains_key("current_owner"), "{st:?}");
    assert!(!st.contains_key("container_id"), "{st:?}");
    assert!(!lab.running(&f), "start ran the local container");
    let mut waiter = Waiter(Some(lab.spawn_container(&["wait", &f])));

    // Sync point: the pod's container_startup asks with `pending` (and its version); only a
    // polling `wait` promotes it to `ready`. The old wait had ended on the stopped container.
    lab.seed_state(
        &f,
        &[("remote_state", "pending"), ("container_version", "2.0.0")],
    );
    let promoted = wait_for(Duration::from_secs(30), || {
        lab.state(&f)
            .get("remote_state")
            .is_some_and(|v| v == "ready")
    });
    if !promoted {
        let exited = waiter.has_exited();
        let out = waiter.finish(Duration::from_secs(5));
        panic!(
            "wait never promoted pending to ready (exited: {exited}, status {:?}, stderr {})\n{:?}",
            out.status,
            stderr(&out),
            lab.state(&f)
        );
    }
    // Three poll periods (and well past the 1 s revert deadline): still waiting, nothing local.
    let end = Instant::now() + Duration::from_secs(6);
    while Instant::now() < end {
        assert!(!waiter.has_exited(), "wait ended without a container");
        assert!(!lab.running(&f), "the local container was started");
        std::thread::sleep(Duration::from_millis(200));
    }
    Lab::assert_subset(&lab.state(&f), &[("remote_state", "ready")]);

    // The pod takes over: container_startup records its id as the owner's container. The pod's
    // application fails with status 3 after a while; the local container had exited with 0, so
    // the wait's 255 says it followed the pod.
    let pod = format!("k8s_{f}");
    let id = lab.create_container_with_cmd(&pod, &["/usr/bin/fail-after", "8", "3"]);
    lab.start_container(&pod);
    lab.seed_state(
        &f,
        &[
            ("current_owner", "kube"),
            ("container_id", &id[..12]),
            ("remote_state", "running"),
        ],
    );
    // While the pod runs the wait runs. The waiter is looked at before the pod, so a waiter
    // seen ended while the pod is then seen running ended before the pod did.
    let mut pod_ran = false;
    loop {
        let waiter_ended = waiter.has_exited();
        let pod_runs = lab.running(&pod);
        if !pod_runs {
            break;
        }
        assert!(!waiter_ended, "wait ended while the pod runs");
        pod_ran = true;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(pod_ran, "the pod never seen running");
    assert_eq!(lab.inspect(&pod).exit_code, Some(3));
    let out = waiter.finish(Duration::from_secs(30));
    assert_status(&out, 255);
    assert!(!lab.running(&f));
    assert_eq!(lab.inspect(&f).exit_code, Some(0));
}

#[test]
fn wait_of_local_feature_whose_container_died_ends_at_once() {
    // Existing behaviour kept: start ran the local container; once it died the wait ends with
    // its verdict so that the unit restarts it (a poll would outlast the command's time limit:
    // the revert deadline is 360 s).
    let lab = Lab::new();
    let f = unique_feature("snmp");
    lab.config(&f, &[("set_owner", "local"), ("state", "enabled")]);
    lab.create_container_with_cmd(&f, &["/usr/bin/fail-after", "1", "3"]);
    let out = lab.container(&["start", &f]);
    assert_status(&out, 0);
    assert!(
        wait_for(Duration::from_secs(30), || lab.inspect(&f).exit_code
            == Some(3)),
        "the local application did not fail: {:?}",
        lab.inspect(&f)
    );
    let out = lab.container(&["wait", &f]);
    assert_status(&out, 255);
    Lab::assert_subset(
        &lab.state(&f),
        &[
            ("current_owner", "local"),
            ("container_stable_version", IMAGE_VERSION),
        ],
    );
}
