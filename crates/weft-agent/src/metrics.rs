//! `/metrics` (Prometheus text), `/healthz` and `/readyz`, served by one small thread on a
//! loopback address of the node.
//!
//! - `/healthz`: the last pass reached the store and reconciled (a liveness probe).
//! - `/readyz`: this node can wire pods: it holds its lease, and the node file (and the CNI
//!   config list, when the agent writes one) are in place (a readiness probe). A gateway or
//!   client: it has planned and reconciled the overlay.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Metrics {
    pub leases: AtomicU64,
    pub leases_rejected: AtomicU64,
    pub peers: AtomicU64,
    pub overlay_sources: AtomicU64,
    pub unreachable_peers: AtomicU64,
    pub reconciles: AtomicU64,
    pub reconcile_errors: AtomicU64,
    pub changes: AtomicU64,
    pub reconcile_micros_total: AtomicU64,
    pub last_reconcile_micros: AtomicU64,
    pub store_errors: AtomicU64,
    pub store_lists: AtomicU64,
    pub store_watch_resumes: AtomicU64,
    pub store_events: AtomicU64,
    /// The last pass reached the store and reconciled without error.
    pub healthy: AtomicBool,
    /// Pods can be wired (see the module's note).
    pub ready: AtomicBool,
}

impl Metrics {
    pub fn render(&self) -> String {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let seconds = |micros: u64| micros as f64 / 1e6;
        let mut text = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            text += &format!("# HELP weft_{name} {help}\n# TYPE weft_{name} {kind}\nweft_{name} {value}\n");
        };
        metric("leases", "gauge", "Live leases in the store.", get(&self.leases).to_string());
        metric(
            "leases_rejected",
            "gauge",
            "Leases in the store not believed (outside the CIDR, overlapping an older one, a bad address or name, unreadable): never programmed.",
            get(&self.leases_rejected).to_string(),
        );
        metric(
            "peers",
            "gauge",
            "Peers this node plans a path to or names as unreachable.",
            get(&self.peers).to_string(),
        );
        metric(
            "overlay_filter_sources",
            "gauge",
            "Underlay addresses the overlay takes VXLAN from (peers and overlay sources); 0 without a filter.",
            get(&self.overlay_sources).to_string(),
        );
        metric(
            "unreachable_peers",
            "gauge",
            "Peers the backend cannot reach from here.",
            get(&self.unreachable_peers).to_string(),
        );
        metric(
            "ready",
            "gauge",
            "1 while this node can wire pods (lease held, node file and CNI config written).",
            u64::from(self.ready.load(Ordering::Relaxed)).to_string(),
        );
        metric("reconciles_total", "counter", "Reconcile passes.", get(&self.reconciles).to_string());
        metric(
            "reconcile_errors_total",
            "counter",
            "Reconcile passes that failed.",
            get(&self.reconcile_errors).to_string(),
        );
        metric(
            "kernel_changes_total",
            "counter",
            "Routes, neighbours and FDB entries changed.",
            get(&self.changes).to_string(),
        );
        metric(
            "reconcile_duration_seconds_sum",
            "counter",
            "Time spent reconciling.",
            seconds(get(&self.reconcile_micros_total)).to_string(),
        );
        metric(
            "last_reconcile_duration_seconds",
            "gauge",
            "Duration of the last reconcile pass.",
            seconds(get(&self.last_reconcile_micros)).to_string(),
        );
        metric(
            "store_errors_total",
            "counter",
            "Store requests that failed.",
            get(&self.store_errors).to_string(),
        );
        metric(
            "store_lists_total",
            "counter",
            "Full listings of the store: one at start, then one per compaction met.",
            get(&self.store_lists).to_string(),
        );
        metric(
            "store_watch_resumes_total",
            "counter",
            "Watches resumed from the last revision seen (a lost connection or member).",
            get(&self.store_watch_resumes).to_string(),
        );
        metric(
            "store_events_total",
            "counter",
            "Store changes received by the watch.",
            get(&self.store_events).to_string(),
        );
        text
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `address` from a thread of its own.
pub fn serve(address: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(address)?;
    let bound = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            // A client that connects and says nothing must not stop the next one.
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
            let mut request_line = String::new();
            let mut reader = BufReader::new(&stream).take(4096);
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match path {
                "/metrics" => ("200 OK", metrics.render()),
                "/healthz" if metrics.healthy.load(Ordering::Relaxed) => ("200 OK", "ok\n".to_string()),
                "/healthz" => ("503 Service Unavailable", "not ready\n".to_string()),
                "/readyz" if metrics.ready.load(Ordering::Relaxed) => ("200 OK", "ready\n".to_string()),
                "/readyz" => ("503 Service Unavailable", "not ready\n".to_string()),
                _ => ("404 Not Found", "not found\n".to_string()),
            };
            let mut stream = &stream;
            let _ = write!(
                stream,
                "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(bound)
}
