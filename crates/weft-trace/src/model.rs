//! A traced path: hops, the header as it stands at each, and the kernel entries that
//! decided. Pure, with the text rendering.

use serde::Serialize;

/// The outer header of an encapsulated packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outer {
    pub src: String,
    pub dst: String,
    pub udp_port: u16,
    pub vni: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Header {
    pub src: String,
    pub dst: String,
    /// Ethernet addresses on the way out of this hop, when there is a way out.
    pub src_mac: Option<String>,
    pub dst_mac: Option<String>,
    pub outer: Option<Outer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fate {
    /// Sent on to the next hop.
    Forward,
    /// Addressed here: the journey ends.
    Deliver,
    /// Stops here, and why.
    Drop(String),
    /// Leaves what this trace can see (a real node's uplink).
    Leave(String),
}

/// One place the packet passes: a namespace (a pod, a node, a rack's bridge, the router).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hop {
    /// The lab member (or "this node").
    pub place: String,
    pub netns: String,
    /// The device it arrives on (none where it starts).
    pub ingress: Option<String>,
    /// The device it leaves by.
    pub egress: Option<String>,
    pub header: Header,
    /// The kernel entries that decided the next step, as the kernel reported them.
    pub decided_by: Vec<String>,
    pub fate: Fate,
    /// With `--verify`: whether a capture in this namespace saw the probe.
    pub seen: Option<bool>,
    /// Where a capture watches this hop (namespace, interface index, whether the packet
    /// leaves by it rather than arrives); not shown.
    #[serde(skip)]
    pub watch: Option<(String, u32, bool)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trace {
    pub from: String,
    pub to: String,
    pub src: String,
    pub dst: String,
    pub hops: Vec<Hop>,
    /// Whether the packet reaches its destination, by the kernel's tables.
    pub delivered: bool,
    /// With `--verify`: the probe was seen at every hop up to the destination.
    pub verified: Option<bool>,
}

impl Trace {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a trace serialises")
    }
}

/// The trace as people read it: one block per hop.
pub fn render(trace: &Trace) -> String {
    let mut out = format!("{} ({}) → {} ({})\n\n", trace.from, trace.src, trace.to, trace.dst);
    for (n, hop) in trace.hops.iter().enumerate() {
        let devices = match (&hop.ingress, &hop.egress) {
            (Some(i), Some(e)) => format!("in {i}, out {e}"),
            (Some(i), None) => format!("in {i}"),
            (None, Some(e)) => format!("out {e}"),
            (None, None) => String::new(),
        };
        let seen = match hop.seen {
            Some(true) => "  [seen]",
            Some(false) => "  [NOT SEEN]",
            None => "",
        };
        out += &format!("{:>2}  {:<10} {devices}{seen}\n", n + 1, hop.place);
        let h = &hop.header;
        let macs = match (&h.src_mac, &h.dst_mac) {
            (Some(s), Some(d)) => format!("   {s} → {d}"),
            (Some(s), None) => format!("   {s} → (unresolved)"),
            _ => String::new(),
        };
        out += &format!("    packet  {} → {}{macs}\n", h.src, h.dst);
        if let Some(o) = &h.outer {
            out += &format!("    outer   {} → {}  udp {}  vni {}\n", o.src, o.dst, o.udp_port, o.vni);
        }
        for entry in &hop.decided_by {
            out += &format!("    {entry}\n");
        }
        match &hop.fate {
            Fate::Forward => {}
            Fate::Deliver => out += "    delivered\n",
            Fate::Drop(why) => out += &format!("    STOPS HERE: {why}\n"),
            Fate::Leave(why) => out += &format!("    leaves: {why}\n"),
        }
    }
    out += match (trace.delivered, trace.verified) {
        (true, Some(true)) => "\ndelivered, and the probe was seen at every hop\n",
        (true, Some(false)) => "\nthe tables deliver it, but the probe was not seen at every hop\n",
        (true, None) => "\ndelivered\n",
        (false, _) => "\nnot delivered\n",
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(place: &str, fate: Fate) -> Hop {
        Hop {
            place: place.into(),
            netns: format!("ns-{place}"),
            ingress: Some("eth0".into()),
            egress: Some("weft.1".into()),
            header: Header {
                src: "10.244.1.2".into(),
                dst: "10.244.3.2".into(),
                src_mac: Some("aa:aa:aa:aa:aa:aa".into()),
                dst_mac: None,
                outer: Some(Outer {
                    src: "198.18.1.11".into(),
                    dst: "198.18.2.11".into(),
                    udp_port: 8472,
                    vni: 1,
                }),
            },
            decided_by: vec!["route 10.244.3.0/24 via 10.244.3.0 dev weft.1 proto 88 onlink".into()],
            fate,
            seen: Some(false),
            watch: None,
        }
    }

    #[test]
    fn the_text_names_every_hop_header_and_entry() {
        let trace = Trace {
            from: "n1-p1".into(),
            to: "n3-p1".into(),
            src: "10.244.1.2".into(),
            dst: "10.244.3.2".into(),
            hops: vec![hop("n1", Fate::Forward), hop("router", Fate::Drop("no route to 10.244.3.2".into()))],
            delivered: false,
            verified: Some(false),
        };
        let text = render(&trace);
        assert!(text.contains(" 1  n1         in eth0, out weft.1  [NOT SEEN]"), "{text}");
        assert!(text.contains("outer   198.18.1.11 → 198.18.2.11  udp 8472  vni 1"), "{text}");
        assert!(text.contains("aa:aa:aa:aa:aa:aa → (unresolved)"), "{text}");
        assert!(
            text.contains("STOPS HERE: no route to 10.244.3.2") && text.ends_with("not delivered\n"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&trace.to_json()).unwrap();
        assert_eq!(json["hops"][1]["fate"]["drop"], "no route to 10.244.3.2");
        assert_eq!(json["hops"][0]["header"]["outer"]["vni"], 1);
    }
}
