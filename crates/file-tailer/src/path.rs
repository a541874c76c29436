//! Parses kubelet log paths: `<root>/<namespace>_<pod>_<uid>/<container>/<n>.log` and its rotated
//! siblings `<n>.log.<timestamp>` / `<n>.log.<timestamp>.gz`. Namespace, pod, UID and container
//! come from the path so tailing never waits for the Kubernetes API.

use std::path::Path;

/// Which pod/container a log directory belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerInfo {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub container: String,
}

/// What kind of log file a name denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `<n>.log`, the file the runtime writes to (if `n` is the newest restart).
    Live,
    /// `<n>.log.<timestamp>`, renamed by the kubelet.
    Rotated,
    /// `<n>.log.<timestamp>.gz`, compressed by the kubelet.
    Gz,
}

/// Parsed file name: restart count, kind and a sort key that orders a container's files oldest
/// first (restart number, then rotation timestamp, live file last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    pub restart: u32,
    pub kind: FileKind,
    pub stamp: String,
}

impl FileName {
    /// Sort key: older files first.
    pub fn order_key(&self) -> (u32, bool, String) {
        (
            self.restart,
            self.kind == FileKind::Live,
            self.stamp.clone(),
        )
    }
}

/// Parses `<namespace>_<pod>_<uid>` (pod names and namespaces cannot contain `_`; the UID can't
/// either, so splitting on the first two underscores is exact).
pub fn parse_pod_dir(name: &str) -> Option<(String, String, String)> {
    let mut it = name.splitn(3, '_');
    let ns = it.next()?;
    let pod = it.next()?;
    let uid = it.next()?;
    if ns.is_empty() || pod.is_empty() || uid.is_empty() {
        return None;
    }
    Some((ns.to_owned(), pod.to_owned(), uid.to_owned()))
}

/// Parses a log file name; `None` for anything that is not a kubelet log (e.g. `*.tmp`).
pub fn parse_file_name(name: &str) -> Option<FileName> {
    let (num, rest) = name.split_once(".log")?;
    let restart: u32 = num.parse().ok()?;
    if rest.is_empty() {
        return Some(FileName {
            restart,
            kind: FileKind::Live,
            stamp: String::new(),
        });
    }
    let rest = rest.strip_prefix('.')?;
    // The kubelet writes these suffixes in lower case only.
    #[allow(clippy::case_sensitive_file_extension_comparisons)]
    if rest.is_empty() || rest.ends_with(".tmp") {
        return None;
    }
    if let Some(stamp) = rest.strip_suffix(".gz") {
        return Some(FileName {
            restart,
            kind: FileKind::Gz,
            stamp: stamp.to_owned(),
        });
    }
    if rest.contains('.') {
        return None;
    }
    Some(FileName {
        restart,
        kind: FileKind::Rotated,
        stamp: rest.to_owned(),
    })
}

/// Builds the container info for `<root>/<pod dir>/<container>`.
pub fn container_info(container_dir: &Path) -> Option<ContainerInfo> {
    let container = container_dir.file_name()?.to_str()?;
    let pod_dir = container_dir.parent()?.file_name()?.to_str()?;
    let (namespace, pod, uid) = parse_pod_dir(pod_dir)?;
    Some(ContainerInfo {
        namespace,
        pod,
        uid,
        container: container.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!(
            parse_file_name("0.log").map(|f| f.kind),
            Some(FileKind::Live)
        );
        let r = parse_file_name("3.log.20240101-101010").unwrap();
        assert_eq!((r.restart, r.kind), (3, FileKind::Rotated));
        let g = parse_file_name("0.log.20240101-101010.gz").unwrap();
        assert_eq!(
            (g.kind, g.stamp.as_str()),
            (FileKind::Gz, "20240101-101010")
        );
        assert!(parse_file_name("0.log.20240101-101010.tmp").is_none());
        assert!(parse_file_name("x.log").is_none());
        assert!(parse_file_name("0.txt").is_none());
        assert!(parse_file_name("0.log.").is_none());
    }

    #[test]
    fn parses_pod_dir() {
        assert_eq!(
            parse_pod_dir("kube-system_coredns-abc_1234-5678"),
            Some((
                "kube-system".into(),
                "coredns-abc".into(),
                "1234-5678".into()
            ))
        );
        assert!(parse_pod_dir("nounderscore").is_none());
        assert!(parse_pod_dir("a__b").is_none());
    }
}
