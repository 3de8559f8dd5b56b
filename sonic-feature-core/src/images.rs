//! Image management (HLD "Image management", upstream `tag_latest` / `clean_image`): once a
//! Kubernetes-deployed image has run long enough it is deemed good, becomes the feature's golden
//! image (tagged as the local image), and older images are purged. Pure planning over the image
//! list; the golden image of a feature is never removed.

use std::collections::BTreeSet;
use std::fmt;

use crate::model::{ContainerId, FeatureName, ImageMgmtSettings, StatusUpdate, Version};
use crate::ports::{ContainerInfo, ImageInfo};

/// The tag a local start uses (`docker create ... <image>:latest`).
pub const LOCAL_TAG: &str = "latest";

/// One image or container operation, carried out in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageOp {
    /// `docker tag <image> <repo>:<tag>`.
    Tag {
        /// Source image id or reference.
        image: String,
        /// Target repository.
        repo: String,
        /// Target tag.
        tag: String,
    },
    /// `docker rmi <reference>`.
    RemoveImage(String),
    /// `docker rm <container>` (the stopped local container, so that the next local start
    /// creates it from the newly tagged image).
    RemoveContainer(ContainerId),
    /// HSET into STATE_DB `FEATURE|<f>` (stable and last good versions).
    UpdateStatus(StatusUpdate),
}

impl fmt::Display for ImageOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tag { image, repo, tag } => write!(f, "docker tag {image} {repo}:{tag}"),
            Self::RemoveImage(r) => write!(f, "docker rmi {r}"),
            Self::RemoveContainer(c) => write!(f, "docker rm {c}"),
            Self::UpdateStatus(u) => write!(f, "status {u}"),
        }
    }
}

/// What the planner needs to know when a deployed version has run long enough.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkGoodFacts {
    /// The feature.
    pub feature: FeatureName,
    /// The version that ran long enough.
    pub version: Version,
    /// The deployed container (by the id recorded when it started running); `None` if gone.
    pub container: Option<ContainerInfo>,
    /// The local container named after the feature; `None` if it does not exist.
    pub local_container: Option<ContainerInfo>,
    /// Every local image reference.
    pub images: Vec<ImageInfo>,
    /// STATE_DB `container_stable_version`.
    pub stable: Option<Version>,
    /// STATE_DB `container_last_version`.
    pub last: Option<Version>,
}

/// The decision about a version that ran long enough.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkGoodPlan {
    /// The deployed container no longer runs: the version was not good after all; drop it
    /// (upstream `tag_latest` returning -1).
    NotRunning,
    /// Cannot proceed now; retry later (upstream returning 1).
    Retry(String),
    /// Carry out these operations in order.
    Ops(Vec<ImageOp>),
}

impl fmt::Display for MarkGoodPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRunning => f.write_str("not running: give up"),
            Self::Retry(why) => write!(f, "retry: {why}"),
            Self::Ops(ops) => {
                for (i, op) in ops.iter().enumerate() {
                    if i > 0 {
                        f.write_str("\n")?;
                    }
                    write!(f, "{op}")?;
                }
                Ok(())
            }
        }
    }
}

/// The image id the feature's local start would run after `ops`: the target of
/// `<base>:latest`, or `None` when there is no such tag.
pub fn golden_after(base: &str, images: &[ImageInfo], ops: &[ImageOp]) -> Option<String> {
    let mut rows: Vec<ImageInfo> = images.to_vec();
    apply_ops(&mut rows, ops);
    rows.iter()
        .find(|r| !r.is_downloaded() && r.repository == base && r.tag == LOCAL_TAG)
        .map(|r| r.id.clone())
}

/// Applies image operations to an image list as Docker would (tags move, an image disappears
/// with its last reference; containers and status are ignored). Used by tests and by callers
/// that want to predict the result.
pub fn apply_ops(rows: &mut Vec<ImageInfo>, ops: &[ImageOp]) {
    for op in ops {
        match op {
            ImageOp::Tag { image, repo, tag } => {
                let id = rows
                    .iter()
                    .find(|r| &r.id == image || &r.reference() == image)
                    .map(|r| r.id.clone());
                if let Some(id) = id {
                    rows.retain(|r| !(r.repository == *repo && r.tag == *tag));
                    rows.push(ImageInfo {
                        id,
                        repository: repo.clone(),
                        tag: tag.clone(),
                    });
                }
            }
            ImageOp::RemoveImage(reference) => {
                rows.retain(|r| r.reference() != *reference && r.id != *reference);
            }
            ImageOp::RemoveContainer(_) | ImageOp::UpdateStatus(_) => {}
        }
    }
}

/// Plans marking `facts.version` good: tag it as the local image, remove the stopped local
/// container, record stable/last versions, purge older images. Settings that are off leave the
/// corresponding steps out; `disable` gives no operation at all.
pub fn plan_mark_good(settings: &ImageMgmtSettings, facts: &MarkGoodFacts) -> MarkGoodPlan {
    let Some(container) = facts.container.as_ref().filter(|c| c.running) else {
        return MarkGoodPlan::NotRunning;
    };
    if settings.disable {
        return MarkGoodPlan::Ops(Vec::new());
    }
    let image_id = &container.image_id;
    // The feature's repository is the one its deployed image came from, without registry
    // (upstream #14367); upstream matched on the feature name instead, which fails for pmon,
    // radv, dhcp_relay (quirk 6).
    let Some(row) = facts
        .images
        .iter()
        .filter(|r| &r.id == image_id)
        .min_by_key(|r| (!r.is_downloaded(), r.tag != facts.version.as_str()))
    else {
        return MarkGoodPlan::Retry(format!(
            "image {image_id} of the running container is not listed"
        ));
    };
    let base = row.base_name().to_owned();
    let mut ops = Vec::new();
    if settings.tag_new_as_local {
        ops.push(ImageOp::Tag {
            image: image_id.clone(),
            repo: base.clone(),
            tag: LOCAL_TAG.to_owned(),
        });
        match &facts.local_container {
            Some(c) if c.running => {
                return MarkGoodPlan::Retry(format!(
                    "local container {} is running, which is unexpected",
                    facts.feature
                ));
            }
            Some(_) => ops.push(ImageOp::RemoveContainer(ContainerId::of_feature(
                &facts.feature,
            ))),
            None => {}
        }
    }
    let new_last = if facts.stable.as_ref() == Some(&facts.version) {
        facts.last.clone()
    } else {
        facts.stable.clone()
    };
    let mut upd = StatusUpdate::new().container_stable_version(facts.version.clone());
    if let Some(l) = &new_last {
        upd = upd.container_last_version(l.clone());
    }
    ops.push(ImageOp::UpdateStatus(upd));
    plan_purge(
        settings,
        facts,
        image_id,
        &base,
        new_last.as_ref(),
        &mut ops,
    );
    MarkGoodPlan::Ops(ops)
}

fn plan_purge(
    settings: &ImageMgmtSettings,
    facts: &MarkGoodFacts,
    image_id: &str,
    base: &str,
    last: Option<&Version>,
    ops: &mut Vec<ImageOp>,
) {
    let rows: Vec<&ImageInfo> = facts
        .images
        .iter()
        .filter(|r| r.base_name() == base && r.tag != LOCAL_TAG)
        .collect();
    let current = facts.version.as_str();
    let Some(prefix) = rows
        .iter()
        .find(|r| r.is_downloaded() && r.tag == current)
        .map(|r| r.repository.clone())
    else {
        // The current version is not a downloaded image: nothing to clean (upstream G3).
        return;
    };
    // Never remove: the new golden image, the image local starts run now, and the last good
    // version (kept for fallback) — except the shipped local copy, which `purge_local_copy`
    // removes by the operator's choice even when it is the last good version (HLD: "this
    // would block from restoring back to factory default"; upstream G4 does the same), so
    // `container_last_version` may then name a version no longer on disk.
    let mut protected: BTreeSet<&str> = BTreeSet::new();
    protected.insert(image_id);
    for r in &facts.images {
        if !r.is_downloaded() && r.repository == base && r.tag == LOCAL_TAG {
            protected.insert(r.id.as_str());
        }
    }
    let local_copy_goes = settings.purge_local_copy && settings.tag_new_as_local;
    if !local_copy_goes {
        for r in rows.iter().filter(|r| !r.is_downloaded()) {
            protected.insert(r.id.as_str());
        }
    }
    if let Some(l) = last {
        for r in rows.iter().filter(|r| r.tag == l.as_str()) {
            protected.insert(r.id.as_str());
        }
    }
    let remote_tags: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.is_downloaded())
        .map(|r| r.tag.as_str())
        .collect();
    if local_copy_goes {
        for local in rows.iter().filter(|r| !r.is_downloaded()) {
            if local.id == image_id {
                // The new golden image carries this tag too; removing a tag of it is harmless
                // but pointless.
                continue;
            }
            if remote_tags.contains(local.tag.as_str()) && local.tag != current {
                // Local and downloaded copies of the same version: keep the local bits under the
                // downloaded name (upstream G5), then drop the local name.
                ops.push(ImageOp::RemoveImage(format!("{prefix}:{}", local.tag)));
                ops.push(ImageOp::Tag {
                    image: local.id.clone(),
                    repo: prefix.clone(),
                    tag: local.tag.clone(),
                });
            }
            ops.push(ImageOp::RemoveImage(local.reference()));
        }
    }
    if settings.purge_older_image {
        for r in rows.iter().filter(|r| r.is_downloaded()) {
            let keep = r.tag == current
                || last.is_some_and(|l| r.tag == l.as_str())
                || protected.contains(r.id.as_str());
            if !keep {
                ops.push(ImageOp::RemoveImage(r.reference()));
            }
        }
    }
}
