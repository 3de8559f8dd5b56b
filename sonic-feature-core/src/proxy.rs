//! Docker's HTTP proxy routed to the Kubernetes master (`use_k8s_as_http_proxy`): the pure part
//! of upstream's `ctrmgr_iptables` — the proxy address out of Docker's systemd drop-in, the
//! rules out of `iptables -t nat -n -L OUTPUT --line-numbers`, and the plan of `iptables`
//! operations that leaves exactly one nat OUTPUT DNAT rule sending the proxy address to
//! `<master>:3128` (none when the master has no address).
//!
//! Reading the drop-in, resolving the master's name and running `iptables` are I/O and happen in
//! `sonic-kube-adapter`; the plan only ever sees an IP address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};

/// The port of the proxy on the master (upstream's `port="3128"`, squid's default).
pub const MASTER_PROXY_PORT: u16 = 3128;

/// The nat chain the rule lives in: only the switch's own traffic (Docker pulling images) goes
/// to the proxy.
pub const CHAIN: &str = "OUTPUT";

/// Why a drop-in, a listing or a master address cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The `HTTP_PROXY` setting of Docker's drop-in is not a usable URL.
    #[error("docker http proxy drop-in line {line}: {reason}: {value:?}")]
    DropIn {
        /// 1-based line number.
        line: usize,
        /// The `HTTP_PROXY` value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A line of the `iptables` listing is not a rule line.
    #[error("iptables nat OUTPUT listing line {line}: {reason}: {text:?}")]
    Listing {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The master's address is IPv6; the rule is an IPv4 (`iptables`) rule.
    #[error(
        "kubernetes master address {ip} is ipv6: the iptables dnat rule of the http proxy takes ipv4 only"
    )]
    Ipv6Master {
        /// The address.
        ip: IpAddr,
    },
}

/// Docker's HTTP proxy: the address the rule matches (destination and port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProxyAddr {
    /// The proxy's IPv4 address.
    pub ip: Ipv4Addr,
    /// The proxy's TCP port.
    pub port: u16,
}

impl fmt::Display for ProxyAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.ip, self.port)
    }
}

/// Finds `HTTP_PROXY=<url>` in the text of Docker's systemd drop-in
/// (`Environment="HTTP_PROXY=http://172.16.1.1:3128/"`) and parses its address. `Ok(None)`: the
/// drop-in sets no HTTP proxy (nothing to route). The proxy's host must be an IPv4 address,
/// since the rule matches it as a destination; without a port the URL's scheme default applies
/// (80 for `http`).
pub fn parse_drop_in(text: &str) -> Result<Option<ProxyAddr>, ProxyError> {
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let trimmed = line.trim();
        if trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let Some(at) = line.find("HTTP_PROXY=") else {
            continue;
        };
        // `HTTPS_PROXY=` does not contain `HTTP_PROXY=`; a longer name ending in it
        // (`NO_HTTP_PROXY=`) is not the setting.
        let before = &line[..at];
        if before
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            continue;
        }
        let value: String = line[at + "HTTP_PROXY=".len()..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '\'')
            .collect();
        return parse_proxy_url(&value)
            .map(Some)
            .map_err(|reason| ProxyError::DropIn {
                line: line_no,
                value,
                reason,
            });
    }
    Ok(None)
}

fn parse_proxy_url(value: &str) -> Result<ProxyAddr, &'static str> {
    if value.is_empty() {
        return Err("the url is empty");
    }
    let (scheme, rest) = value
        .split_once("://")
        .ok_or("expected a url like http://172.16.1.1:3128/")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err("the url scheme must be http or https"),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("credentials in the proxy url are not supported");
    }
    if authority.starts_with('[') {
        return Err("the proxy host must be an ipv4 address (iptables rule), not ipv6");
    }
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or("the proxy port must be a number from 1 to 65535")?,
        ),
        None => (authority, default_port),
    };
    if host.is_empty() {
        return Err("the url has no host");
    }
    let ip = host
        .parse::<Ipv4Addr>()
        .map_err(|_| "the proxy host must be an ipv4 address (the iptables rule matches it)")?;
    Ok(ProxyAddr { ip, port })
}

/// One rule line of `iptables -t nat -n -L OUTPUT --line-numbers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatRule {
    /// The rule number (1-based position in the chain).
    pub num: u32,
    /// `target` column (`DNAT`).
    pub target: String,
    /// `prot` column: `tcp`, or the protocol number (`6`) as iptables-nft ≥ 1.8.9 prints it.
    pub prot: String,
    /// `source` column.
    pub source: String,
    /// `destination` column.
    pub destination: String,
    /// The rest of the line (`tcp dpt:3128 to:10.0.0.1:3128`).
    pub extra: String,
}

impl NatRule {
    fn option(&self, prefix: &str) -> Option<&str> {
        self.extra
            .split_whitespace()
            .find_map(|t| t.strip_prefix(prefix))
    }

    /// Whether this is a rule of ours for `proxy`: DNAT of TCP from anywhere to the proxy's
    /// address and port (upstream's `DNAT tcp -- 0.0.0.0/0 <proxy> tcp dpt:<port> to:` match).
    pub fn routes(&self, proxy: &ProxyAddr) -> bool {
        self.target == "DNAT"
            && (self.prot == "tcp" || self.prot == "6")
            && self.source == "0.0.0.0/0"
            && self.destination == proxy.ip.to_string()
            && self.option("dpt:") == Some(proxy.port.to_string().as_str())
            && self.option("to:").is_some()
    }

    /// The DNAT destination (`to:` option), if any.
    pub fn to(&self) -> Option<&str> {
        self.option("to:")
    }
}

/// Parses the listing of `iptables -t nat -n -L OUTPUT --line-numbers`: the `Chain` and column
/// header lines and blank lines are skipped, every other line must be a numbered rule.
pub fn parse_nat_listing(text: &str) -> Result<Vec<NatRule>, ProxyError> {
    let mut rules = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let err = |reason| ProxyError::Listing {
            line: i + 1,
            text: line.to_owned(),
            reason,
        };
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("Chain ") || trimmed.starts_with("num ") {
            continue;
        }
        let mut cols = trimmed.split_whitespace();
        let num = cols
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| err("expected a rule number first"))?;
        let mut field = || {
            cols.next().map(str::to_owned).ok_or_else(|| {
                err("expected the columns num, target, prot, opt, source and destination")
            })
        };
        let target = field()?;
        let prot = field()?;
        let _opt = field()?;
        let source = field()?;
        let destination = field()?;
        let extra = cols.collect::<Vec<_>>().join(" ");
        if rules.iter().any(|r: &NatRule| r.num == num) {
            return Err(err("rule number listed twice"));
        }
        rules.push(NatRule {
            num,
            target,
            prot,
            source,
            destination,
            extra,
        });
    }
    Ok(rules)
}

/// One `iptables` call of a plan; [`IptablesOp::args`] gives its arguments after the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IptablesOp {
    /// Delete the rule with this number from the nat OUTPUT chain.
    Delete(u32),
    /// Append the DNAT rule sending `proxy` to `to`.
    Append {
        /// Docker's proxy.
        proxy: ProxyAddr,
        /// The master's proxy.
        to: SocketAddrV4,
    },
}

impl IptablesOp {
    /// The arguments after the `iptables` program.
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = ["-t", "nat"].iter().map(|s| (*s).to_owned()).collect();
        match self {
            Self::Delete(n) => {
                a.extend(["-D".to_owned(), CHAIN.to_owned(), n.to_string()]);
            }
            Self::Append { proxy, to } => {
                a.extend(
                    [
                        "-A",
                        CHAIN,
                        "-p",
                        "tcp",
                        "-d",
                        &proxy.ip.to_string(),
                        "--dport",
                        &proxy.port.to_string(),
                        "-j",
                        "DNAT",
                        "--to-destination",
                        &to.to_string(),
                    ]
                    .iter()
                    .map(|s| (*s).to_owned()),
                );
            }
        }
        a
    }
}

impl fmt::Display for IptablesOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Delete(n) => write!(f, "delete nat {CHAIN} rule {n}"),
            Self::Append { proxy, to } => write!(f, "append nat {CHAIN} dnat {proxy} -> {to}"),
        }
    }
}

/// The arguments (after the program) of the listing [`parse_nat_listing`] reads.
pub fn list_args() -> Vec<String> {
    ["-t", "nat", "-n", "-L", CHAIN, "--line-numbers"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

/// Where the master's proxy is for `master` (`None`: no master address, no rule).
pub fn master_destination(master: Option<IpAddr>) -> Result<Option<SocketAddrV4>, ProxyError> {
    match master {
        None => Ok(None),
        Some(IpAddr::V4(ip)) => Ok(Some(SocketAddrV4::new(ip, MASTER_PROXY_PORT))),
        Some(ip @ IpAddr::V6(_)) => Err(ProxyError::Ipv6Master { ip }),
    }
}

/// The operations that leave exactly one rule sending `proxy` to `<master>:3128` among `rules`
/// (none when `master` is `None`): the first rule already pointing there is kept, every other
/// rule for `proxy` is deleted, from the highest number down so that the numbers of the rules
/// still to delete stay valid, and the rule is appended when none was kept. Rules for other
/// addresses or ports are never touched.
pub fn plan(
    proxy: &ProxyAddr,
    master: Option<IpAddr>,
    rules: &[NatRule],
) -> Result<Vec<IptablesOp>, ProxyError> {
    let to = master_destination(master)?;
    let want = to.map(|t| t.to_string());
    let mut ours: Vec<&NatRule> = rules.iter().filter(|r| r.routes(proxy)).collect();
    ours.sort_by_key(|r| r.num);
    let kept = want
        .as_deref()
        .and_then(|w| ours.iter().find(|r| r.to() == Some(w)).map(|r| r.num));
    let mut delete: Vec<u32> = ours
        .iter()
        .map(|r| r.num)
        .filter(|n| Some(*n) != kept)
        .collect();
    delete.sort_unstable_by(|a, b| b.cmp(a));
    let mut ops: Vec<IptablesOp> = delete.into_iter().map(IptablesOp::Delete).collect();
    if let (Some(to), None) = (to, kept) {
        ops.push(IptablesOp::Append { proxy: *proxy, to });
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DROP_IN: &str = "[Service]\nEnvironment=\"HTTP_PROXY=http://172.16.1.1:3128/\"\n";

    fn proxy() -> ProxyAddr {
        ProxyAddr {
            ip: Ipv4Addr::new(172, 16, 1, 1),
            port: 3128,
        }
    }

    /// A listing as iptables prints it, from upstream-style rule texts (`DNAT tcp -- ...`).
    fn listing(rules: &[&str]) -> String {
        let mut s = String::from(
            "Chain OUTPUT (policy ACCEPT)\nnum  target     prot opt source               destination\n",
        );
        for (i, r) in rules.iter().enumerate() {
            s.push_str(&format!("{}    {r}\n", i + 1));
        }
        s
    }

    /// Applies `ops` to the rule texts the way iptables would (numbers shift after a delete).
    fn apply(rules: &[&str], ops: &[IptablesOp]) -> Vec<String> {
        let mut out: Vec<String> = rules.iter().map(|s| (*s).to_owned()).collect();
        for op in ops {
            match op {
                IptablesOp::Delete(n) => {
                    let i = usize::try_from(*n).unwrap() - 1;
                    assert!(i < out.len(), "delete of rule {n} beyond the chain");
                    out.remove(i);
                }
                IptablesOp::Append { proxy, to } => out.push(format!(
                    "DNAT tcp -- 0.0.0.0/0 {} tcp dpt:{} to:{to}",
                    proxy.ip, proxy.port
                )),
            }
        }
        out
    }

    fn run(rules: &[&str], master: Option<&str>) -> (Vec<IptablesOp>, Vec<String>) {
        let parsed = parse_nat_listing(&listing(rules)).unwrap();
        let ip = master.map(|m| m.parse::<IpAddr>().unwrap());
        let ops = plan(&proxy(), ip, &parsed).unwrap();
        let after = apply(rules, &ops);
        (ops, after)
    }

    const OTHER_SOURCE: &str =
        "DNAT tcp -- 20.20.0.0/0 172.16.1.1 tcp dpt:8080 to:100.127.20.21:8080";
    const OTHER_PORT: &str = "DNAT tcp -- 0.0.0.0/0 172.16.1.1 tcp dpt:3129 to:11.11.11.11:8088";
    const STALE_A: &str = "DNAT tcp -- 0.0.0.0/0 172.16.1.1 tcp dpt:3128 to:11.11.11.11:8080";
    const STALE_B: &str = "DNAT tcp -- 0.0.0.0/0 172.16.1.1 tcp dpt:3128 to:11.11.11.11:8088";

    // Upstream case 1: stale and duplicate rules replaced by one rule to the master.
    #[test]
    fn stale_and_duplicate_rules_are_replaced_by_one_rule_to_the_master() {
        let rules = [OTHER_SOURCE, STALE_A, STALE_A, STALE_B, OTHER_PORT];
        let (ops, after) = run(&rules, Some("10.10.20.20"));
        assert_eq!(
            ops,
            vec![
                IptablesOp::Delete(4),
                IptablesOp::Delete(3),
                IptablesOp::Delete(2),
                IptablesOp::Append {
                    proxy: proxy(),
                    to: "10.10.20.20:3128".parse().unwrap()
                }
            ]
        );
        assert_eq!(
            after,
            vec![
                OTHER_SOURCE.to_owned(),
                OTHER_PORT.to_owned(),
                "DNAT tcp -- 0.0.0.0/0 172.16.1.1 tcp dpt:3128 to:10.10.20.20:3128".to_owned()
            ]
        );
    }

    // Upstream case 2: an empty master address removes every rule of the proxy.
    #[test]
    fn no_master_address_removes_every_rule_of_the_proxy() {
        let rules = [OTHER_SOURCE, STALE_A, STALE_A, STALE_B];
        let (ops, after) = run(&rules, None);
        assert_eq!(
            ops,
            vec![
                IptablesOp::Delete(4),
                IptablesOp::Delete(3),
                IptablesOp::Delete(2)
            ]
        );
        assert_eq!(after, vec![OTHER_SOURCE.to_owned()]);
    }

    // Upstream case 3 (a host name) is the adapter's resolution; the plan gets its address.
    #[test]
    fn a_resolved_master_address_replaces_the_stale_rule() {
        let (ops, after) = run(&[OTHER_SOURCE, STALE_A], Some("142.250.1.1"));
        assert_eq!(ops.len(), 2);
        assert_eq!(
            after[1],
            "DNAT tcp -- 0.0.0.0/0 172.16.1.1 tcp dpt:3128 to:142.250.1.1:3128"
        );
    }

    // Upstream case 4: no HTTP proxy in the drop-in means nothing to do.
    #[test]
    fn a_drop_in_without_http_proxy_has_nothing_to_route() {
        assert_eq!(parse_drop_in("[Service]\n").unwrap(), None);
        assert_eq!(
            parse_drop_in("[Service]\nEnvironment=\"HTTPS_PROXY=http://1.2.3.4:3128/\"\n").unwrap(),
            None
        );
        assert_eq!(
            parse_drop_in("# Environment=\"HTTP_PROXY=http://1.2.3.4:3128/\"\n").unwrap(),
            None
        );
        assert_eq!(
            parse_drop_in("Environment=\"NO_HTTP_PROXY=http://1.2.3.4:3128/\"\n").unwrap(),
            None
        );
    }

    // Upstream case 5 (and the idempotent re-run): a correct rule is kept, nothing runs.
    #[test]
    fn the_rule_already_in_place_is_kept_and_nothing_runs() {
        let ours = "DNAT tcp -- 0.0.0.0/0 172.16.1.1 tcp dpt:3128 to:10.10.20.20:3128";
        let (ops, after) = run(&[OTHER_SOURCE, ours, OTHER_PORT], Some("10.10.20.20"));
        assert!(ops.is_empty(), "{ops:?}");
        assert_eq!(after.len(), 3);
    }

    #[test]
    fn duplicates_of_the_correct_rule_are_deleted_and_the_first_is_kept() {
        let ours = "DNAT tcp -- 0.0.0.0/0 172.16.1.1 tcp dpt:3128 to:10.10.20.20:3128";
        let (ops, after) = run(
            &[STALE_A, ours, OTHER_PORT, ours, ours],
            Some("10.10.20.20"),
        );
        assert_eq!(
            ops,
            vec![
                IptablesOp::Delete(5),
                IptablesOp::Delete(4),
                IptablesOp::Delete(1)
            ]
        );
        assert_eq!(after, vec![ours.to_owned(), OTHER_PORT.to_owned()]);
    }

    #[test]
    fn an_empty_chain_gets_the_rule_appended() {
        let (ops, after) = run(&[], Some("10.0.0.9"));
        assert_eq!(ops.len(), 1);
        assert_eq!(
            ops[0].args(),
            [
                "-t",
                "nat",
                "-A",
                "OUTPUT",
                "-p",
                "tcp",
                "-d",
                "172.16.1.1",
                "--dport",
                "3128",
                "-j",
                "DNAT",
                "--to-destination",
                "10.0.0.9:3128"
            ]
        );
        assert_eq!(
            IptablesOp::Delete(7).args(),
            ["-t", "nat", "-D", "OUTPUT", "7"]
        );
        assert_eq!(after.len(), 1);
        assert_eq!(
            list_args(),
            ["-t", "nat", "-n", "-L", "OUTPUT", "--line-numbers"]
        );
    }

    #[test]
    fn an_ipv6_master_is_refused_by_name_and_no_operation_is_planned() {
        let rules = parse_nat_listing(&listing(&[STALE_A])).unwrap();
        let e = plan(&proxy(), Some("fd00::1".parse().unwrap()), &rules).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kubernetes master address fd00::1 is ipv6: the iptables dnat rule of the http proxy takes ipv4 only"
        );
    }

    #[test]
    fn the_listing_of_iptables_nft_with_protocol_numbers_is_understood() {
        // iptables 1.8.9 (nf_tables) prints the protocol as its number.
        let text = "Chain OUTPUT (policy ACCEPT)\n\
            num  target     prot opt source               destination         \n\
            1    DNAT       6    --  0.0.0.0/0            172.16.1.1           tcp dpt:3128 to:10.1.2.3:3128\n\
            2    ACCEPT     0    --  0.0.0.0/0            0.0.0.0/0           \n";
        let rules = parse_nat_listing(text).unwrap();
        assert_eq!(rules.len(), 2);
        assert!(rules[0].routes(&proxy()));
        assert_eq!(rules[0].to(), Some("10.1.2.3:3128"));
        assert!(!rules[1].routes(&proxy()));
        let ops = plan(&proxy(), Some("10.1.2.3".parse().unwrap()), &rules).unwrap();
        assert!(ops.is_empty());
    }

    #[test]
    fn malformed_listing_lines_are_named_with_their_line_number() {
        let e = parse_nat_listing("Chain OUTPUT (policy ACCEPT)\nx DNAT tcp -- a b\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "iptables nat OUTPUT listing line 2: expected a rule number first: \"x DNAT tcp -- a b\""
        );
        let e = parse_nat_listing("1 DNAT tcp --\n").unwrap_err();
        assert!(
            matches!(e, ProxyError::Listing { line: 1, reason, .. } if reason.contains("columns")),
            "{e}"
        );
        let e =
            parse_nat_listing("1 DNAT tcp -- 0.0.0.0/0 1.1.1.1\n1 DNAT tcp -- 0.0.0.0/0 1.1.1.1\n")
                .unwrap_err();
        assert!(matches!(e, ProxyError::Listing { line: 2, .. }), "{e}");
    }

    #[test]
    fn the_drop_in_gives_the_proxy_address() {
        assert_eq!(parse_drop_in(DROP_IN).unwrap(), Some(proxy()));
        assert_eq!(
            parse_drop_in("Environment=HTTP_PROXY=http://10.0.0.1\n").unwrap(),
            Some(ProxyAddr {
                ip: Ipv4Addr::new(10, 0, 0, 1),
                port: 80
            })
        );
        assert_eq!(
            parse_drop_in(
                "Environment=\"A=b\" \"HTTP_PROXY=http://10.0.0.2:8080\" \"NO_PROXY=x\"\n"
            )
            .unwrap(),
            Some(ProxyAddr {
                ip: Ipv4Addr::new(10, 0, 0, 2),
                port: 8080
            })
        );
    }

    #[test]
    fn a_malformed_proxy_url_is_named_with_its_line() {
        let e = parse_drop_in("[Service]\nEnvironment=\"HTTP_PROXY=http://proxy.example:3128/\"\n")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "docker http proxy drop-in line 2: the proxy host must be an ipv4 address (the iptables rule matches it): \"http://proxy.example:3128/\""
        );
        for (bad, why) in [
            ("HTTP_PROXY=", "empty"),
            ("HTTP_PROXY=172.16.1.1:3128", "url like"),
            ("HTTP_PROXY=ftp://172.16.1.1:3128", "scheme"),
            ("HTTP_PROXY=http://172.16.1.1:99999/", "port"),
            ("HTTP_PROXY=http://[fd00::1]:3128/", "ipv6"),
            ("HTTP_PROXY=http://u:p@172.16.1.1:3128/", "credentials"),
        ] {
            let e = parse_drop_in(bad).unwrap_err();
            assert!(
                matches!(&e, ProxyError::DropIn { line: 1, reason, .. } if reason.contains(why)),
                "{bad}: {e}"
            );
        }
    }
}
