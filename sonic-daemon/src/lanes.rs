//! The daemon's action queue: actions of different features run at the same time, so that a
//! slow `systemctl restart` of one feature (a container with a long stop grace period) holds
//! back neither the node's label pushes nor the restarts of other features.
//!
//! Each action belongs to a lane: the node's lane (join, reset, server status, desired labels,
//! the label journal and node patches, the HTTP proxy route) or the lane of one feature
//! (restarts, is-active checks, its status writes, its image work, its alerts and its pending
//! restart record). The rules keep every ordering the manager relies on:
//!
//! - within a lane, actions run one at a time, in the order the manager emitted them;
//! - a feature's action waits for every node action emitted before it (the manager emits, for
//!   instance, the label that blocks a failing version before the rollback's restart);
//! - a node action does not wait for feature actions: label pushes overtake a slow restart.
//!
//! At most the limit given to [`ActionQueue::new`] (the daemon's `MAX_IN_FLIGHT`) are in flight.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use sonic_feature_core::manager::Action;
use sonic_feature_core::model::FeatureName;

/// Where an action runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    /// The node: master, server status, labels, proxy route.
    Node,
    /// One feature (or ASIC instance).
    Feature(FeatureName),
}

/// The lane of an action.
pub fn lane_of(action: &Action) -> Lane {
    match action {
        Action::Join(..)
        | Action::Reset
        | Action::WriteServerStatus(_)
        | Action::SetDesiredLabels(_)
        | Action::ReadNodeLabels(_)
        | Action::PatchNodeLabels(..)
        | Action::SaveLabelJournal(_)
        | Action::SaveClocks(_)
        | Action::RouteHttpProxy { .. } => Lane::Node,
        Action::CheckService(_, f)
        | Action::RestartService { feature: f, .. }
        | Action::ForgetRestart(f)
        | Action::UpdateFeatureStatus { feature: f, .. }
        | Action::GatherImageFacts { feature: f, .. }
        | Action::RunImageOps { feature: f, .. }
        | Action::Alert { feature: f, .. } => Lane::Feature(f.clone()),
    }
}

/// Identifies an action handed out by [`ActionQueue::start_next`], to report its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(u64);

/// Actions waiting and in flight, by lane.
#[derive(Debug)]
pub struct ActionQueue {
    next_seq: u64,
    waiting: VecDeque<(u64, Lane, Action)>,
    running: BTreeMap<u64, Lane>,
    limit: usize,
}

impl ActionQueue {
    /// An empty queue running at most `limit` actions at once (at least one).
    pub fn new(limit: usize) -> Self {
        Self {
            next_seq: 0,
            waiting: VecDeque::new(),
            running: BTreeMap::new(),
            limit: limit.max(1),
        }
    }

    /// Queues an action. A label journal or clocks snapshot replaces one of its kind still
    /// waiting: each snapshot is complete, so only the newest needs writing, and a burst of
    /// label changes does not queue one copy of a growing journal per change.
    pub fn push(&mut self, action: Action) {
        let kind = std::mem::discriminant(&action);
        if matches!(action, Action::SaveLabelJournal(_) | Action::SaveClocks(_))
            && let Some((_, _, waiting)) = self
                .waiting
                .iter_mut()
                .find(|(_, _, a)| std::mem::discriminant(a) == kind)
        {
            *waiting = action;
            return;
        }
        self.next_seq += 1;
        let lane = lane_of(&action);
        self.waiting.push_back((self.next_seq, lane, action));
    }

    /// The next action that may start now, if any; it counts as in flight until
    /// [`ActionQueue::finished`].
    pub fn start_next(&mut self) -> Option<(Ticket, Action)> {
        if self.running.len() >= self.limit {
            return None;
        }
        let first_node_running = self
            .running
            .iter()
            .find(|(_, l)| **l == Lane::Node)
            .map(|(s, _)| *s);
        let busy: BTreeSet<&Lane> = self.running.values().collect();
        let mut blocked: BTreeSet<Lane> = BTreeSet::new();
        let mut node_waiting_before = false;
        let mut pick = None;
        for (i, (seq, lane, _)) in self.waiting.iter().enumerate() {
            let startable = !busy.contains(lane)
                && !blocked.contains(lane)
                && match lane {
                    Lane::Node => true,
                    Lane::Feature(_) => {
                        !node_waiting_before && first_node_running.is_none_or(|s| s > *seq)
                    }
                };
            if startable {
                pick = Some(i);
                break;
            }
            if *lane == Lane::Node {
                node_waiting_before = true;
            }
            blocked.insert(lane.clone());
        }
        let (seq, lane, action) = self.waiting.remove(pick?)?;
        self.running.insert(seq, lane);
        Some((Ticket(seq), action))
    }

    /// The action of `ticket` ended.
    pub fn finished(&mut self, ticket: Ticket) {
        self.running.remove(&ticket.0);
    }

    /// Drops every waiting action (the manager that emitted them was replaced); actions in
    /// flight run on.
    pub fn drop_waiting(&mut self) {
        self.waiting.clear();
    }

    /// How many actions are in flight.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// How many actions wait.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonic_feature_core::labels::LabelJournal;
    use sonic_feature_core::manager::RequestId;
    use sonic_feature_core::model::{ServerStatus, SetOwner, StatusUpdate};

    fn f(name: &str) -> FeatureName {
        FeatureName::parse(name).unwrap_or_else(|e| panic!("{e}"))
    }
    fn restart(name: &str, r: u64) -> Action {
        Action::RestartService {
            request: RequestId(r),
            feature: f(name),
            owner: SetOwner::Kube,
        }
    }
    fn status(name: &str) -> Action {
        Action::UpdateFeatureStatus {
            feature: f(name),
            update: StatusUpdate::new(),
        }
    }
    fn node() -> Action {
        Action::WriteServerStatus(ServerStatus::default())
    }
    fn started(q: &mut ActionQueue) -> Vec<(Ticket, String)> {
        std::iter::from_fn(|| q.start_next())
            .map(|(t, a)| (t, a.to_string()))
            .collect()
    }
    fn names(v: &[(Ticket, String)]) -> Vec<&str> {
        v.iter().map(|(_, s)| s.as_str()).collect()
    }

    #[test]
    fn node_actions_overtake_a_slow_restart_and_other_features_restart_meanwhile() {
        let mut q = ActionQueue::new(8);
        q.push(restart("snmp", 1));
        q.push(restart("lldp", 2));
        q.push(node());
        let s = started(&mut q);
        assert_eq!(
            names(&s),
            vec![
                "restart snmp -> kube",
                "restart lldp -> kube",
                "server status connected=false ip= port="
            ]
        );
        assert_eq!(q.running(), 3);
    }

    #[test]
    fn a_features_actions_run_one_at_a_time_in_order() {
        let mut q = ActionQueue::new(8);
        q.push(status("snmp"));
        q.push(restart("snmp", 1));
        let s = started(&mut q);
        assert_eq!(names(&s), vec!["status snmp {}"]);
        q.finished(s[0].0);
        let s = started(&mut q);
        assert_eq!(names(&s), vec!["restart snmp -> kube"]);
    }

    #[test]
    fn a_feature_action_waits_for_the_node_actions_emitted_before_it() {
        let mut q = ActionQueue::new(8);
        q.push(node());
        q.push(Action::SaveLabelJournal(LabelJournal::default()));
        q.push(restart("snmp", 1));
        let s = started(&mut q);
        assert_eq!(names(&s), vec!["server status connected=false ip= port="]);
        q.finished(s[0].0);
        let s = started(&mut q);
        assert_eq!(names(&s), vec!["save label journal (0 queued)"]);
        q.finished(s[0].0);
        let s = started(&mut q);
        assert_eq!(names(&s), vec!["restart snmp -> kube"]);
        // A node action emitted after it does not hold it back.
        let mut q = ActionQueue::new(8);
        q.push(restart("snmp", 1));
        q.push(node());
        assert_eq!(started(&mut q).len(), 2);
    }

    #[test]
    fn no_more_than_the_limit_run_and_dropping_keeps_those_in_flight() {
        let mut q = ActionQueue::new(2);
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            q.push(restart(name, i as u64));
        }
        let s = started(&mut q);
        assert_eq!(s.len(), 2);
        q.drop_waiting();
        assert_eq!((q.running(), q.waiting()), (2, 0));
        q.finished(s[1].0);
        assert!(q.start_next().is_none());
        assert_eq!(q.running(), 1);
    }

    #[test]
    fn a_waiting_journal_snapshot_is_replaced_by_a_newer_one() {
        let mut q = ActionQueue::new(1);
        q.push(node());
        let mut newer = LabelJournal::default();
        newer.queue.push(sonic_feature_core::labels::LabelChange {
            key: sonic_feature_core::model::LabelKey::parse("a").unwrap_or_else(|e| panic!("{e}")),
            value: None,
        });
        q.push(Action::SaveLabelJournal(LabelJournal::default()));
        q.push(Action::SaveLabelJournal(newer));
        assert_eq!(q.waiting(), 2);
        let first = q.start_next().map(|(t, _)| t);
        q.finished(first.unwrap_or_else(|| panic!("one starts")));
        let s = started(&mut q);
        assert_eq!(names(&s), vec!["save label journal (1 queued)"]);
    }
}
