//! A real etcd (Debian's etcd-server, 3.4): the command that runs a member, and the lab's
//! etcd cluster: its members, each in a namespace of its own on a rack, started, stopped and
//! asked (leader, compaction, metrics) through etcd's JSON gateway on their client URLs.

use crate::lab::Lab;
use crate::process::{self, spawn_daemon};
use crate::state::Process;
use crate::topology::{EtcdHost, Topology};
use crate::wiring::open_namespace;
use crate::LabError;
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How often a watch that asked for progress notifications gets one, on the tests' own
/// servers (etcd's default is 10 minutes, too long for a test to wait on). A lab's members
/// keep etcd's default, as a real cluster would: the fleet benchmark measures on them.
pub const WATCH_PROGRESS_NOTIFY_INTERVAL: &str = "5s";
/// How long `up`, `start_store` and `restart_etcd_members` wait for a leader.
const LEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one HTTP call to a member may take (a member cut off does not answer at all).
const HTTP_TIMEOUT: Duration = Duration::from_secs(3);

/// How to run one member of an etcd cluster.
#[derive(Debug, Clone)]
pub struct MemberConfig<'a> {
    /// The member's name in the cluster (`--initial-cluster` names it so).
    pub name: &'a str,
    pub data_dir: &'a Path,
    /// Where it serves clients (and the JSON gateway, and /metrics).
    pub client_url: &'a str,
    /// Where the other members reach it.
    pub peer_url: &'a str,
    /// Every member: `name=peer_url,...`.
    pub initial_cluster: &'a str,
    /// Keeps clusters apart that could see each other's peers.
    pub token: &'a str,
    /// `--experimental-watch-progress-notify-interval` (none: etcd's default, 10 minutes).
    pub progress_notify: Option<&'a str>,
}

/// The command that starts a member of a static cluster with its data in `data_dir`.
/// `--initial-cluster-state new` bootstraps the cluster; a member that has data already
/// ignores the initial flags and rejoins with what its data says. Quiet but for errors.
pub fn member_command(config: &MemberConfig) -> Command {
    let mut command = Command::new("etcd");
    let MemberConfig { name, data_dir, client_url, peer_url, initial_cluster, token, progress_notify } =
        config;
    command
        .args(["--name", name, "--data-dir"])
        .arg(data_dir)
        .args(["--listen-client-urls", client_url, "--advertise-client-urls", client_url])
        .args(["--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url])
        .args(["--initial-cluster", initial_cluster, "--initial-cluster-token", token])
        .args(["--initial-cluster-state", "new"])
        .args(["--logger", "zap", "--log-level", "error"]);
    if let Some(interval) = progress_notify {
        command.args(["--experimental-watch-progress-notify-interval", interval]);
    }
    command
}

/// The command that starts a one-member etcd with its data in `data_dir`, serving clients
/// on `client_url` and its (unused) peer port on `peer_url`.
pub fn command(data_dir: &Path, client_url: &str, peer_url: &str) -> Command {
    member_command(&MemberConfig {
        name: "default",
        data_dir,
        client_url,
        peer_url,
        initial_cluster: &format!("default={peer_url}"),
        token: "etcd-cluster",
        progress_notify: Some(WATCH_PROGRESS_NOTIFY_INTERVAL),
    })
}

/// The sum of a metric's samples in Prometheus' text format whose labels include every
/// `(label, value)` of `filter`: lines `name{label="value",...} value [timestamp]`.
pub fn metric_sum(text: &str, name: &str, filter: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, rest) = match line.find('{') {
                Some(open) => {
                    let close = line.rfind('}')?;
                    (&line[..open], (Some(&line[open + 1..close]), &line[close + 1..]))
                }
                None => line.split_once(char::is_whitespace).map(|(n, r)| (n, (None, r)))?,
            };
            let (labels, value) = rest;
            if series.trim() != name {
                return None;
            }
            let labels = labels.map(parse_labels).unwrap_or_default();
            let wanted =
                filter.iter().all(|(k, v)| labels.iter().any(|(label, value)| label == k && value == v));
            wanted.then(|| value.split_whitespace().next()?.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// `a="x",b="y\"z"` → `[(a, x), (b, y"z)]`.
fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if name.trim().is_empty() || chars.next() != Some('"') {
            return labels;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((name.trim().trim_start_matches(',').trim().to_string(), value));
        // past the comma, if any
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
}

/// A number of etcd's JSON gateway: 64-bit ones come as strings.
fn number(value: &Value) -> u64 {
    value.as_u64().or_else(|| value.as_str()?.parse().ok()).unwrap_or(0)
}

/// A member of the lab's etcd cluster, as [`Lab::etcd_members`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMember {
    /// `etcd1`, …: its name in the lab (`weft lab exec LAB etcd1 -- …`) and in the cluster.
    pub name: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    /// `ip:2379`, as the store URL lists it.
    pub endpoint: String,
    /// Its process, when it runs.
    pub pid: Option<u32>,
}

/// What one running member says of itself (`POST /v3/maintenance/status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdStatus {
    /// The member asked.
    pub name: String,
    /// Its id in the cluster.
    pub id: u64,
    /// The leader it follows (by name; its id in hex if no member of the lab has that id),
    /// or None while it knows of no leader.
    pub leader: Option<String>,
    pub raft_term: u64,
    /// The store's revision as it sees it.
    pub revision: u64,
}

/// A running member, and what it said of itself or why it did not.
type Answer = (EtcdHost, Result<EtcdStatus, LabError>);

/// Plain HTTP with short timeouts, answering error statuses with their bodies.
fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(HTTP_TIMEOUT))
        .timeout_connect(Some(Duration::from_secs(1)))
        .http_status_as_error(false)
        .build()
        .into()
}

fn etcd_error(what: impl std::fmt::Display) -> LabError {
    LabError::Etcd(what.to_string())
}

/// One gateway call: `POST url` with `body`, its JSON answer (an error for anything but 2xx).
fn post(agent: &ureq::Agent, url: &str, body: &Value) -> Result<Value, LabError> {
    let mut response = agent.post(url).send_json(body).map_err(|e| etcd_error(format!("{url}: {e}")))?;
    let status = response.status();
    let reply: Value =
        response.body_mut().read_json().map_err(|e| etcd_error(format!("{url}: {status}: {e}")))?;
    if !status.is_success() {
        return Err(etcd_error(format!("{url}: {status}: {reply}")));
    }
    Ok(reply)
}

fn get_text(agent: &ureq::Agent, url: &str) -> Result<String, LabError> {
    let mut response = agent.get(url).call().map_err(|e| etcd_error(format!("{url}: {e}")))?;
    let status = response.status();
    let text = response.body_mut().read_to_string().map_err(|e| etcd_error(format!("{url}: {e}")))?;
    if !status.is_success() {
        return Err(etcd_error(format!("{url}: {status}: {text}")));
    }
    Ok(text)
}

/// What one member's status says: (member id, leader id or 0, raft term, revision).
fn raw_status(agent: &ureq::Agent, host: &EtcdHost) -> Result<(u64, u64, u64, u64), LabError> {
    let reply = post(agent, &format!("{}/v3/maintenance/status", host.client_url()), &json!({}))?;
    let header = &reply["header"];
    Ok((
        number(&header["member_id"]),
        number(&reply["leader"]),
        number(&header["raft_term"]),
        number(&header["revision"]),
    ))
}

impl Lab {
    /// Runs `f` in a thread of its own inside the router's namespace, which reaches every
    /// rack and so every etcd member (none of them is ever reached from the host's own).
    fn in_router_netns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, LabError> {
        let router = self.topology().router_netns;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let ns = open_namespace(&router)?;
                    ns.run(f).map_err(|e| LabError::kernel("enter the router's namespace", e))
                })
                .join()
                .expect("a thread in the router's namespace")
        })
    }

    fn etcd_hosts(&self) -> Result<Vec<EtcdHost>, LabError> {
        let hosts = self.topology().etcd;
        if hosts.is_empty() {
            return Err(LabError::Invalid(format!(
                "lab {} has no etcd (it was made with --store sqlite)",
                self.name()
            )));
        }
        Ok(hosts)
    }

    fn etcd_host(&self, name: &str) -> Result<EtcdHost, LabError> {
        let hosts = self.etcd_hosts()?;
        hosts.iter().find(|h| h.name == name).cloned().ok_or_else(|| {
            LabError::Invalid(format!(
                "lab {} has no etcd member {name:?}; it has {}",
                self.name(),
                hosts.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// The process of etcd member `name`, if it runs.
    fn etcd_process(&self, name: &str) -> Option<&Process> {
        self.state.etcd_members.get(name).filter(|p| process::is_running(p))
    }

    fn running_etcd_hosts(&self) -> Result<Vec<EtcdHost>, LabError> {
        Ok(self.etcd_hosts()?.into_iter().filter(|h| self.etcd_process(&h.name).is_some()).collect())
    }

    /// The lab's etcd members (none without the etcd store), each with its process if it
    /// runs.
    pub fn etcd_members(&self) -> Vec<EtcdMember> {
        self.topology()
            .etcd
            .into_iter()
            .map(|host| EtcdMember {
                pid: self.etcd_process(&host.name).map(|p| p.pid),
                endpoint: host.client_endpoint(),
                name: host.name,
                netns: host.netns,
                ip: host.ip,
            })
            .collect()
    }

    /// Each running member's answer to a status request (all at once), in the members'
    /// order; a member that does not answer is an error in its place.
    fn etcd_answers(&self) -> Result<Vec<Answer>, LabError> {
        let hosts = self.running_etcd_hosts()?;
        let raw = self.in_router_netns(|| {
            let agent = http_agent();
            std::thread::scope(|scope| {
                let handles: Vec<_> = hosts
                    .iter()
                    // The threads of a thread in a namespace are in it too.
                    .map(|host| scope.spawn(|| raw_status(&agent, host)))
                    .collect();
                handles.into_iter().map(|h| h.join().expect("a status thread")).collect::<Vec<_>>()
            })
        })?;
        // Leader ids to names: by the members that answered, else by the member list.
        let mut names: Vec<(u64, String)> = hosts
            .iter()
            .zip(&raw)
            .filter_map(|(host, answer)| answer.as_ref().ok().map(|(id, ..)| (*id, host.name.clone())))
            .collect();
        let unknown = raw
            .iter()
            .flatten()
            .any(|(_, leader, ..)| *leader != 0 && !names.iter().any(|(id, _)| id == leader));
        if unknown {
            names.extend(self.etcd_member_ids(&hosts).unwrap_or_default());
        }
        let name_of =
            |id: u64| names.iter().find(|(i, _)| *i == id).map_or(format!("{id:x}"), |(_, n)| n.clone());
        Ok(hosts
            .into_iter()
            .zip(raw)
            .map(|(host, answer)| {
                let status = answer.map(|(id, leader, raft_term, revision)| EtcdStatus {
                    name: host.name.clone(),
                    id,
                    leader: (leader != 0).then(|| name_of(leader)),
                    raft_term,
                    revision,
                });
                (host, status)
            })
            .collect())
    }

    /// Member ids and names from the cluster's member list, asked of the first member that
    /// answers.
    fn etcd_member_ids(&self, hosts: &[EtcdHost]) -> Result<Vec<(u64, String)>, LabError> {
        self.in_router_netns(|| {
            let agent = http_agent();
            let mut last = etcd_error("no member running");
            for host in hosts {
                match post(&agent, &format!("{}/v3/cluster/member/list", host.client_url()), &json!({})) {
                    Ok(reply) => {
                        return Ok(reply["members"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|m| (number(&m["ID"]), m["name"].as_str().unwrap_or_default().to_string()))
                            .collect())
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        })?
    }

    /// What every running member says of itself: its id, the leader it follows, its term.
    /// An error if a running member does not answer.
    pub fn etcd_status(&self) -> Result<Vec<EtcdStatus>, LabError> {
        self.etcd_answers()?.into_iter().map(|(_, status)| status).collect()
    }

    /// The name of the current leader: the running member that says it leads and that a
    /// majority of the cluster's members follow (asked through each running member's
    /// `POST /v3/maintenance/status`; members that do not answer, or that follow another or
    /// none, are outvoted). A leader just killed, which its followers still name until they
    /// time out, is none. An error while there is none, with what each member said.
    pub fn etcd_leader(&self) -> Result<String, LabError> {
        let members = self.etcd_hosts()?.len();
        let answers = self.etcd_answers()?;
        let mut votes: Vec<(&str, usize)> = Vec::new();
        for leader in answers.iter().filter_map(|(_, s)| s.as_ref().ok()?.leader.as_deref()) {
            match votes.iter_mut().find(|(name, _)| *name == leader) {
                Some((_, count)) => *count += 1,
                None => votes.push((leader, 1)),
            }
        }
        let leads = |name: &str| {
            answers.iter().any(|(host, status)| {
                host.name == name && status.as_ref().is_ok_and(|s| s.leader.as_deref() == Some(name))
            })
        };
        if let Some((leader, _)) = votes.iter().find(|(name, count)| *count > members / 2 && leads(name)) {
            return Ok(leader.to_string());
        }
        let said: Vec<String> = answers
            .iter()
            .map(|(host, status)| match status {
                Ok(EtcdStatus { leader: Some(leader), .. }) => format!("{} follows {leader}", host.name),
                Ok(_) => format!("{} knows no leader", host.name),
                Err(e) => format!("{} does not answer ({e})", host.name),
            })
            .collect();
        Err(etcd_error(format!(
            "no leader that a majority of the {members} members follow: {}",
            if said.is_empty() { "no member runs".to_string() } else { said.join("; ") }
        )))
    }

    /// Waits until the cluster has a leader and the store answers through the lab's URL, as
    /// the agents use it. Returns the leader.
    pub fn wait_for_etcd_leader(&self, timeout: Duration) -> Result<String, LabError> {
        let deadline = Instant::now() + timeout;
        let url = self.state.store_url.clone();
        loop {
            let leader = self.etcd_leader();
            if let Ok(leader) = &leader {
                let url = url.clone();
                let answers =
                    self.in_router_netns(move || weft_store::open(&url).and_then(|s| s.network()).is_ok())?;
                if answers {
                    return Ok(leader.clone());
                }
            }
            if Instant::now() > deadline {
                let why = leader.err().map_or("the store did not answer".into(), |e| e.to_string());
                return Err(LabError::Timeout(format!(
                    "etcd did not elect a leader and answer at {url} within {} s ({why}); see {}",
                    timeout.as_secs(),
                    self.state.dir().join("logs").join("etcd*.log").display()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts member `host` in its namespace on its data dir (`etcd1/`, … in the lab's
    /// directory), its output in the lab's `logs/etcd1.log`, ….
    fn spawn_etcd_member(&mut self, topology: &Topology, host: &EtcdHost) -> Result<(), LabError> {
        let ns = open_namespace(&host.netns)?;
        let data_dir = self.state.dir().join(&host.name);
        let (client_url, peer_url) = (host.client_url(), host.peer_url());
        let command = member_command(&MemberConfig {
            name: &host.name,
            data_dir: &data_dir,
            client_url: &client_url,
            peer_url: &peer_url,
            initial_cluster: &topology.etcd_initial_cluster(),
            token: &format!("weftlab-{}", self.name()),
            // etcd's default, as in a real cluster.
            progress_notify: None,
        });
        let (child, process) = spawn_daemon(command, &ns, &self.state.log_file(&host.name))?;
        self.children.insert(process.pid, child);
        self.state.etcd_members.insert(host.name.clone(), process);
        self.state.save()
    }

    /// Starts (or starts again) every etcd member that is not running, and waits until the
    /// cluster has a leader and answers. Returns the leader.
    pub fn start_store(&mut self) -> Result<String, LabError> {
        let topology = self.topology();
        self.etcd_hosts()?;
        for host in &topology.etcd {
            if self.etcd_process(&host.name).is_none() {
                self.spawn_etcd_member(&topology, host)?;
            }
        }
        self.wait_for_etcd_leader(LEADER_TIMEOUT)
    }

    /// Stops every etcd member (SIGKILL: as if their machines died). Their data stays.
    pub fn stop_store(&mut self) {
        let members: Vec<String> = self.state.etcd_members.keys().cloned().collect();
        for name in members {
            if let Some(process) = self.state.etcd_members.remove(&name) {
                self.stop(&process, libc::SIGKILL);
            }
        }
        let _ = self.state.save();
    }

    /// Stops etcd member `name` with SIGKILL (as if its machine died); its data stays for
    /// [`Lab::start_etcd_member`]. Nothing to do if it is not running.
    pub fn stop_etcd_member(&mut self, name: &str) -> Result<(), LabError> {
        self.etcd_host(name)?;
        if let Some(process) = self.state.etcd_members.remove(name) {
            self.stop(&process, libc::SIGKILL);
        }
        self.state.save()
    }

    /// Starts etcd member `name` again on the data it kept, so it rejoins the cluster, and
    /// waits until it answers; when a majority of the members run, until it follows a
    /// leader. Nothing to do if it runs.
    pub fn start_etcd_member(&mut self, name: &str) -> Result<(), LabError> {
        let host = self.etcd_host(name)?;
        if self.etcd_process(name).is_some() {
            return Ok(());
        }
        let topology = self.topology();
        self.spawn_etcd_member(&topology, &host)?;
        let majority = self.running_etcd_hosts()?.len() > topology.etcd.len() / 2;
        let deadline = Instant::now() + LEADER_TIMEOUT;
        loop {
            let process = self.state.etcd_members.get(name).cloned();
            if !process.as_ref().is_some_and(process::is_running) {
                return Err(etcd_error(format!(
                    "member {name} stopped at once; see {}",
                    self.state.log_file(name).display()
                )));
            }
            let status = self.etcd_answers()?.into_iter().find(|(h, _)| h.name == name).map(|(_, s)| s);
            let ready = match &status {
                Some(Ok(status)) => !majority || status.leader.is_some(),
                _ => false,
            };
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(LabError::Timeout(format!(
                    "etcd member {name} did not {} within {} s; see {}",
                    if majority { "rejoin and follow a leader" } else { "answer" },
                    LEADER_TIMEOUT.as_secs(),
                    self.state.log_file(name).display()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops every etcd member (SIGKILL), then starts them all again on their data and
    /// waits for a leader. Returns the leader.
    pub fn restart_etcd_members(&mut self) -> Result<String, LabError> {
        self.etcd_hosts()?;
        self.stop_store();
        self.start_store()
    }

    /// Compacts etcd's history at its current revision (physically: the old revisions are
    /// gone once it returns), and returns that revision. A watch from before it meets a
    /// compaction. Compacting again with nothing written since is no error.
    pub fn etcd_compact(&self) -> Result<u64, LabError> {
        let hosts = self.running_etcd_hosts()?;
        self.in_router_netns(|| {
            let agent = http_agent();
            let mut last = etcd_error("no member runs");
            for host in &hosts {
                let url = host.client_url();
                // Any key: the header has the store's revision.
                let revision = match post(&agent, &format!("{url}/v3/kv/range"), &json!({ "key": "Lw==" })) {
                    Ok(reply) => number(&reply["header"]["revision"]),
                    Err(e) => {
                        last = e;
                        continue;
                    }
                };
                let body = json!({ "revision": revision.to_string(), "physical": true });
                match post(&agent, &format!("{url}/v3/kv/compaction"), &body) {
                    Ok(_) => return Ok(revision),
                    Err(e) if e.to_string().contains("required revision has been compacted") => {
                        return Ok(revision)
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        })?
    }

    /// The sum over the running members of a metric from their `GET /metrics`, counting the
    /// samples whose labels include every pair of `label_filter`: e.g.
    /// `etcd_metric("grpc_server_handled_total", &[("grpc_method", "Range")])`. An error if
    /// a running member does not answer.
    pub fn etcd_metric(&self, name: &str, label_filter: &[(&str, &str)]) -> Result<f64, LabError> {
        let hosts = self.running_etcd_hosts()?;
        if hosts.is_empty() {
            return Err(etcd_error("no member runs"));
        }
        self.in_router_netns(|| {
            let agent = http_agent();
            let mut sum = 0.0;
            for host in &hosts {
                let text = get_text(&agent, &format!("{}/metrics", host.client_url()))?;
                sum += metric_sum(&text, name, label_filter);
            }
            Ok(sum)
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_started_with_the_whole_cluster_and_progress_notifications() {
        let command = member_command(&MemberConfig {
            name: "etcd2",
            data_dir: Path::new("/run/weft-lab/x/etcd2"),
            client_url: "http://198.18.2.102:2379",
            peer_url: "http://198.18.2.102:2380",
            initial_cluster: "etcd1=http://198.18.1.101:2380,etcd2=http://198.18.2.102:2380",
            token: "weftlab-x",
            progress_notify: Some("5s"),
        });
        let args: Vec<String> = command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let args = args.join(" ");
        assert!(args.starts_with("--name etcd2 --data-dir /run/weft-lab/x/etcd2 "), "{args}");
        assert!(args.contains("--listen-peer-urls http://198.18.2.102:2380"), "{args}");
        assert!(
            args.contains(
                "--initial-cluster etcd1=http://198.18.1.101:2380,etcd2=http://198.18.2.102:2380 \
                 --initial-cluster-token weftlab-x --initial-cluster-state new"
            ),
            "{args}"
        );
        assert!(args.contains("--experimental-watch-progress-notify-interval 5s"), "{args}");
    }

    #[test]
    fn metrics_are_summed_over_the_samples_the_filter_picks() {
        let text = "# HELP grpc_server_handled_total Total number of RPCs.\n\
            # TYPE grpc_server_handled_total counter\n\
            grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 12\n\
            grpc_server_handled_total{grpc_code=\"Unavailable\",grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 3\n\
            grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 5\n\
            grpc_server_handled_total_extra{grpc_method=\"Range\"} 100\n\
            etcd_server_has_leader 1\n\
            weird{a=\"x\\\"y,z\",b=\"}\"} 2.5 1700000000\n";
        assert_eq!(metric_sum(text, "grpc_server_handled_total", &[("grpc_method", "Range")]), 15.0);
        assert_eq!(
            metric_sum(text, "grpc_server_handled_total", &[("grpc_method", "Range"), ("grpc_code", "OK")]),
            12.0
        );
        assert_eq!(metric_sum(text, "grpc_server_handled_total", &[]), 20.0);
        assert_eq!(metric_sum(text, "etcd_server_has_leader", &[]), 1.0);
        assert_eq!(metric_sum(text, "weird", &[("a", "x\"y,z"), ("b", "}")]), 2.5);
        assert_eq!(metric_sum(text, "absent", &[]), 0.0);
    }

    #[test]
    fn gateway_numbers_are_read_from_strings() {
        let status: Value = serde_json::from_str(
            r#"{"header":{"member_id":"13195394291058371180","raft_term":"2"},"leader":"13195394291058371180"}"#,
        )
        .unwrap();
        assert_eq!(number(&status["leader"]), 13195394291058371180);
        assert_eq!(number(&status["header"]["raft_term"]), 2);
        assert_eq!(number(&status["absent"]), 0);
    }
}
