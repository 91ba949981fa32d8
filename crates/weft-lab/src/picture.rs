//! The lab as a picture: racks with their segments, the router with its AS, interfaces and
//! pod routes, the outside client, the store, nodes with their uplinks, pod subnets and pods,
//! VXLAN tunnels between uplinks, BGP sessions, a legend, and a traced path drawn over it
//! with a numbered badge per hop. SVG, or a self-contained HTML page that fills the window
//! and steps through the hops like slides. Pure: a [`Scene`] in, a [`Drawing`] and text out.
//!
//! The drawing comes in two arrangements: `Wide` (racks side by side, their machines side by
//! side) for screens, `Narrow` (one column) for phones; the page holds both and shows the one
//! that keeps its text readable at the window's width.

mod geometry;

use geometry::{place_badge, text_box, text_width};
pub use geometry::{Point, Rect};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;
use weft_trace::{Fate, Hop, Trace};

#[derive(Debug, Clone, Serialize)]
pub struct PodBox {
    pub name: String,
    pub address: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeBox {
    pub name: String,
    pub address: String,
    pub subnet: String,
    pub pods: Vec<PodBox>,
    /// A gateway: no pods, joins the overlay.
    pub gateway: bool,
}

/// A member of the lab's etcd cluster, a machine on a rack.
#[derive(Debug, Clone, Serialize)]
pub struct EtcdBox {
    pub name: String,
    pub address: String,
    pub leader: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RackBox {
    pub name: String,
    pub subnet: String,
    pub nodes: Vec<NodeBox>,
    pub etcd: Vec<EtcdBox>,
}

/// One next hop of a route the router holds.
#[derive(Debug, Clone, Serialize)]
pub struct NextHop {
    /// The gateway; none for a route straight onto the interface's segment.
    pub address: Option<String>,
    /// The lab member with that address, if one has it.
    pub member: Option<String>,
    /// The router's interface it goes out of.
    pub interface: Option<String>,
}

/// A route of the router's into the pod network, with every next hop it holds (several:
/// ECMP).
#[derive(Debug, Clone, Serialize)]
pub struct PodRoute {
    pub destination: String,
    pub next_hops: Vec<NextHop>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct RouterBox {
    /// Its AS, when it speaks BGP.
    pub asn: Option<u32>,
    /// What speaks BGP there (bird, frr).
    pub daemon: Option<String>,
    /// Interface name and address with prefix, as its kernel has them.
    pub interfaces: Vec<(String, String)>,
    /// The pods' network, and the routes into it the router's kernel holds.
    pub pod_network: String,
    pub routes: Vec<PodRoute>,
    /// Why its kernel's tables are not shown, when they could not be read.
    pub unread: Option<String>,
}

/// Where the agents keep their leases.
#[derive(Debug, Clone, Serialize)]
pub enum StoreBox {
    /// One file on the lab's host, which every agent opens.
    Sqlite { path: String },
    /// The etcd cluster, its members drawn on their racks ([`RackBox::etcd`]).
    Etcd { members: usize, leader: Option<String> },
}

/// A BGP session of a machine's with the router.
#[derive(Debug, Clone, Serialize)]
pub struct BgpSession {
    pub machine: String,
    /// The machine's AS and the router's, as the session has them.
    pub asn: u32,
    pub peer_asn: u32,
    pub state: String,
}

/// Everything the picture shows, read from the lab's state and its agents' status.
#[derive(Debug, Clone, Serialize)]
pub struct Scene {
    pub lab: String,
    pub design: String,
    pub racks: Vec<RackBox>,
    pub router: RouterBox,
    pub outside: String,
    /// The outside client runs the agent as a client.
    pub client: bool,
    pub store: StoreBox,
    /// VXLAN tunnels between two machines (node or gateway names, `outside` for the client).
    pub tunnels: Vec<(String, String)>,
    pub bgp: Vec<BgpSession>,
    pub trace: Option<Trace>,
}

/// How the drawing is arranged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrangement {
    /// Racks side by side, their machines side by side: screens.
    Wide,
    /// One column: phones.
    Narrow,
}

impl Arrangement {
    fn name(self) -> &'static str {
        match self {
            Arrangement::Wide => "wide",
            Arrangement::Narrow => "narrow",
        }
    }
}

/// A tunnel as drawn: the machines it joins and where its line starts and ends.
#[derive(Debug, Clone, PartialEq)]
pub struct TunnelLine {
    pub ends: (String, String),
    pub from: Point,
    pub to: Point,
}

/// A step of the traced path as drawn: from hop `hop` (1-based) to hop `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub hop: usize,
    pub to: usize,
    /// The packet is encapsulated on this step (both ends see the outer header).
    pub overlay: bool,
    pub points: Vec<Point>,
}

/// A drawn picture: its size, where its parts are (for the page, and for tests), and its
/// markup.
#[derive(Debug, Clone)]
pub struct Drawing {
    pub arrangement: Arrangement,
    pub width: f64,
    pub height: f64,
    /// The box of every line of text.
    pub texts: Vec<Rect>,
    /// Each hop's badge (hop number, 1-based).
    pub badges: Vec<(usize, Rect)>,
    /// Each machine's uplink (eth0), where its tunnels and BGP sessions start.
    pub uplinks: Vec<(String, Point)>,
    pub tunnels: Vec<TunnelLine>,
    pub segments: Vec<Segment>,
    /// The kinds of line and mark drawn, and the legend's entries.
    pub marks: BTreeSet<&'static str>,
    pub legend: Vec<&'static str>,
    markup: String,
}

// Sizes, in the drawing's units. With the page's width, one unit is about a pixel at
// 1600 × 1000.
const FONT: f64 = 14.0;
const TITLE_FONT: f64 = 20.0;
const LINE: f64 = 19.0;
const PAD: f64 = 12.0;
/// Room at a box's right for a hop's badge.
const BADGE_ROOM: f64 = 34.0;
const POD_H: f64 = 28.0;
const POD_GAP: f64 = 6.0;
const POD_INSET: f64 = 12.0;
/// A strip at the router's (and outside client's) foot, free of text: paths turn there.
const FLOOR: f64 = 30.0;
const BADGE_R: f64 = 11.5;
const MIN_MACHINE_W: f64 = 200.0;
/// In the narrow arrangement, a machine's uplink is on its left edge this far down: above its
/// first line of text.
const NARROW_UPLINK: f64 = 8.0;

const FONT_FAMILY: &str = "DejaVu Sans, Verdana, sans-serif";

const CABLE: &str = "#868e96";
const SEGMENT: &str = "#adb5bd";
const TUNNEL: &str = "#7048e8";
const BGP: &str = "#1971c2";
const PLAIN: &str = "#e8590c";
const OVERLAY: &str = "#7048e8";
const STOP: &str = "#e03131";
const HALO: &str = "#ffd43b";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn num(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == r.trunc() {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

fn pt(p: Point) -> String {
    format!("{},{}", num(p.x), num(p.y))
}

/// Painting order: later layers cover earlier ones.
#[derive(Clone, Copy)]
enum Layer {
    Back,
    Wires,
    Tunnels,
    Sessions,
    Boxes,
    Path,
    /// Lines from a badge moved aside to its hop's place, under every badge.
    Leaders,
    Badges,
    Legend,
}

#[derive(Default)]
struct Canvas {
    layers: [String; 9],
    texts: Vec<Rect>,
    marks: BTreeSet<&'static str>,
}

impl Canvas {
    fn push(&mut self, layer: Layer, markup: &str) {
        self.layers[layer as usize].push_str(markup);
    }

    /// A line of text, `y` its baseline; its box is kept so that badges stay off it.
    #[allow(clippy::too_many_arguments)]
    fn text(
        &mut self,
        layer: Layer,
        x: f64,
        y: f64,
        size: f64,
        bold: bool,
        middle: bool,
        text: &str,
        attrs: &str,
    ) {
        self.texts.push(text_box(text, x, y, size, bold, middle));
        let weight = if bold { r#" font-weight="bold""# } else { "" };
        let anchor = if middle { r#" text-anchor="middle""# } else { "" };
        let size = if size == FONT { String::new() } else { format!(r#" font-size="{}""#, num(size)) };
        let markup = format!(
            r#"<text x="{}" y="{}"{size}{weight}{anchor}{attrs}>{}</text>"#,
            num(x),
            num(y),
            escape(text)
        );
        self.push(layer, &markup);
    }

    fn mark(&mut self, kind: &'static str) {
        self.marks.insert(kind);
    }
}

/// A line of a box's text.
#[derive(Debug, Clone)]
struct Line {
    text: String,
    bold: bool,
}

fn bold(text: impl Into<String>) -> Line {
    Line { text: text.into(), bold: true }
}

fn plain(text: impl Into<String>) -> Line {
    Line { text: text.into(), bold: false }
}

fn lines_width(lines: &[Line]) -> f64 {
    lines.iter().map(|l| text_width(&l.text, FONT, l.bold)).fold(0.0, f64::max)
}

fn lines_height(lines: &[Line]) -> f64 {
    10.0 + lines.len() as f64 * LINE + 4.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Node,
    Gateway,
    Etcd,
}

impl Kind {
    fn class(self) -> &'static str {
        match self {
            Kind::Node => "node",
            Kind::Gateway => "node gateway",
            Kind::Etcd => "etcd",
        }
    }

    fn fill(self) -> &'static str {
        match self {
            Kind::Node => "#ebfbee",
            Kind::Gateway => "#fff9db",
            Kind::Etcd => "#fff0f6",
        }
    }

    fn mark(self) -> &'static str {
        match self {
            Kind::Node => "node",
            Kind::Gateway => "gateway",
            Kind::Etcd => "etcd",
        }
    }
}

/// A machine on a rack: a node, a gateway or an etcd member.
struct Machine {
    name: String,
    kind: Kind,
    lines: Vec<Line>,
    pods: Vec<PodBox>,
    rack: usize,
}

impl Machine {
    fn height(&self) -> f64 {
        let pods = self.pods.len() as f64;
        lines_height(&self.lines) + pods * (POD_H + POD_GAP) + if self.pods.is_empty() { 0.0 } else { 6.0 }
    }

    fn width(&self) -> f64 {
        let pods = self
            .pods
            .iter()
            .map(|p| text_width(&pod_label(p), FONT, false) + 2.0 * POD_INSET + PAD + BADGE_ROOM)
            .fold(0.0, f64::max);
        (lines_width(&self.lines) + PAD + BADGE_ROOM).max(pods).max(MIN_MACHINE_W)
    }
}

fn pod_label(pod: &PodBox) -> String {
    format!("{} · {}", pod.name, pod.address)
}

fn bgp_line(scene: &Scene, machine: &str) -> Option<Line> {
    scene.bgp.iter().find(|s| s.machine == machine).map(|s| plain(format!("BGP AS {} · {}", s.asn, s.state)))
}

fn machines(scene: &Scene) -> Vec<Machine> {
    let mut all = Vec::new();
    for (r, rack) in scene.racks.iter().enumerate() {
        for node in &rack.nodes {
            let (kind, mut lines) = if node.gateway {
                (
                    Kind::Gateway,
                    vec![
                        bold(format!("gateway {} · {}", node.name, node.address)),
                        plain("joins the overlay"),
                    ],
                )
            } else {
                (
                    Kind::Node,
                    vec![
                        bold(format!("{} · {}", node.name, node.address)),
                        plain(format!("pods {}", node.subnet)),
                    ],
                )
            };
            lines.extend(bgp_line(scene, &node.name));
            all.push(Machine { name: node.name.clone(), kind, lines, pods: node.pods.clone(), rack: r });
        }
        for member in &rack.etcd {
            let mut lines =
                vec![bold(format!("{} · {}", member.name, member.address)), plain("etcd member, port 2379")];
            if member.leader {
                lines.push(bold("★ leader"));
            }
            all.push(Machine {
                name: member.name.clone(),
                kind: Kind::Etcd,
                lines,
                pods: Vec::new(),
                rack: r,
            });
        }
    }
    all
}

/// How many of the router's routes it lists; the rest are counted.
const ROUTER_ROUTES_SHOWN: usize = 12;

fn router_lines(router: &RouterBox) -> Vec<Line> {
    let mut lines = vec![match (router.asn, &router.daemon) {
        (Some(asn), Some(daemon)) => bold(format!("router · AS {asn} · BGP by {daemon}")),
        (Some(asn), None) => bold(format!("router · AS {asn}")),
        _ => bold("router · no BGP"),
    }];
    lines.extend(router.interfaces.iter().map(|(name, address)| plain(format!("{name}  {address}"))));
    let hop = |h: &NextHop| {
        let mut text = match &h.address {
            Some(address) => format!("via {address}"),
            None => "directly".to_string(),
        };
        if let Some(member) = &h.member {
            text += &format!(" ({member})");
        }
        if let Some(interface) = &h.interface {
            text += &format!(" on {interface}");
        }
        text
    };
    if let Some(why) = &router.unread {
        lines.push(plain(why.clone()));
    } else if router.routes.is_empty() {
        lines.push(plain(format!("no route into {}", router.pod_network)));
    }
    for route in router.routes.iter().take(ROUTER_ROUTES_SHOWN) {
        match route.next_hops.as_slice() {
            [one] => lines.push(plain(format!("{} {}", route.destination, hop(one)))),
            hops => {
                lines.push(plain(format!("{}: ECMP, {} next hops", route.destination, hops.len())));
                lines.extend(hops.iter().map(|h| plain(format!("→ {}", hop(h)))));
            }
        }
    }
    if router.routes.len() > ROUTER_ROUTES_SHOWN {
        lines.push(plain(format!("… and {} more routes", router.routes.len() - ROUTER_ROUTES_SHOWN)));
    }
    lines
}

fn outside_lines(scene: &Scene) -> Vec<Line> {
    vec![
        bold(format!("outside client · {}", scene.outside)),
        plain(if scene.client { "runs the agent: joins the overlay" } else { "beyond the router" }),
    ]
}

fn store_lines(scene: &Scene) -> Vec<Line> {
    match &scene.store {
        StoreBox::Sqlite { path } => {
            vec![bold("store · SQLite"), plain(path.clone()), plain("a file every agent opens, no network")]
        }
        StoreBox::Etcd { members, leader } => vec![
            bold(format!("store · etcd, {members} member{}", if *members == 1 { "" } else { "s" })),
            plain("each a machine on a rack"),
            plain(match leader {
                Some(leader) => format!("leader: {leader}"),
                None => "leader: none known".to_string(),
            }),
        ],
    }
}

/// A rack's segment: where its bus runs and where the router's cable meets it.
#[derive(Debug, Clone, Copy)]
struct Bus {
    from: Point,
    to: Point,
    junction: Point,
}

/// Where everything is.
struct Layout {
    arrangement: Arrangement,
    width: f64,
    height: f64,
    title: Vec<(String, Point, f64)>,
    router: Rect,
    outside: Rect,
    store: Rect,
    /// The router's ports, from its box outwards, by interface name (racks, `outside`).
    ports: HashMap<String, Vec<Point>>,
    /// Where the cable to the outside client ends: its uplink.
    outside_uplink: Point,
    racks: Vec<(Rect, Bus)>,
    rack_names: Vec<String>,
    machines: Vec<(Machine, Rect)>,
    pods: HashMap<String, Rect>,
    /// Where the legend starts, and how wide it may be.
    legend: Point,
    legend_width: f64,
}

impl Layout {
    fn machine(&self, name: &str) -> Option<&(Machine, Rect)> {
        self.machines.iter().find(|(m, _)| m.name == name)
    }

    /// A machine's uplink: the top middle of its box (wide), its left edge by its first
    /// line (narrow); the outside client's where its cable ends.
    fn uplink(&self, name: &str) -> Option<Point> {
        if name == "outside" {
            return Some(self.outside_uplink);
        }
        let (_, r) = self.machine(name)?;
        Some(match self.arrangement {
            Arrangement::Wide => Point::new(r.x + r.w / 2.0, r.y),
            Arrangement::Narrow => Point::new(r.x, r.y + NARROW_UPLINK),
        })
    }

    /// Where a machine's drop meets its rack's bus.
    fn bus_point(&self, name: &str) -> Option<Point> {
        let (machine, _) = self.machine(name)?;
        let up = self.uplink(name)?;
        let (_, bus) = self.racks.get(machine.rack)?;
        Some(match self.arrangement {
            Arrangement::Wide => Point::new(up.x, bus.from.y),
            Arrangement::Narrow => Point::new(bus.from.x, up.y),
        })
    }

    fn floor(&self) -> f64 {
        self.router.bottom() - FLOOR / 2.0
    }

    fn bounds(&self) -> Rect {
        Rect::new(0.0, 0.0, self.width, self.height)
    }
}

fn layout(scene: &Scene, arrangement: Arrangement) -> Layout {
    let machines = machines(scene);
    let machine_w = machines.iter().map(Machine::width).fold(MIN_MACHINE_W, f64::max);
    let router_lines = router_lines(&scene.router);
    let box_w = |lines: &[Line]| lines_width(lines) + 2.0 * PAD + BADGE_ROOM;
    let router_size = (box_w(&router_lines).max(260.0), lines_height(&router_lines) + FLOOR);
    let outside_size = (box_w(&outside_lines(scene)), lines_height(&outside_lines(scene)) + FLOOR);
    let store_size = (box_w(&store_lines(scene)), lines_height(&store_lines(scene)));
    let mut title = format!("lab {} · {}", scene.lab, scene.design);
    if let Some(trace) = &scene.trace {
        title += &format!(" · {} → {}", trace.from, trace.to);
    }
    match arrangement {
        Arrangement::Wide => wide(scene, machines, router_size, outside_size, store_size, title),
        Arrangement::Narrow => {
            narrow(scene, machines, machine_w, router_size, outside_size, store_size, title)
        }
    }
}

const MARGIN: f64 = 24.0;

fn wide(
    scene: &Scene,
    machines: Vec<Machine>,
    router: (f64, f64),
    outside: (f64, f64),
    store: (f64, f64),
    title: String,
) -> Layout {
    const RACK_PAD: f64 = 18.0;
    const GAP: f64 = 18.0;
    const RACK_GAP: f64 = 40.0;
    const RACK_TOP: f64 = 66.0;
    const RACK_FOOT: f64 = 44.0;
    const BAND: f64 = 120.0;
    const ROW_Y: f64 = 56.0;
    // Each machine as wide as its text needs (nodes hold their pods; an etcd member or a
    // gateway is narrower); an empty rack as wide as one machine.
    let widths: Vec<Vec<f64>> = (0..scene.racks.len())
        .map(|r| machines.iter().filter(|m| m.rack == r).map(Machine::width).collect())
        .collect();
    let rack_w = |ws: &Vec<f64>| {
        2.0 * RACK_PAD + ws.iter().sum::<f64>().max(MIN_MACHINE_W) + (ws.len().max(1) as f64 - 1.0) * GAP
    };
    let racks_w: f64 =
        widths.iter().map(rack_w).sum::<f64>() + (scene.racks.len().max(1) as f64 - 1.0) * RACK_GAP;
    let top_w = store.0 + 50.0 + router.0 + 70.0 + outside.0;
    let content_w = racks_w.max(top_w).max(text_width(&title, TITLE_FONT, true));
    let width = content_w + 2.0 * MARGIN;

    // The top row: the store, the router over the racks' middle, the outside client; their
    // feet in line.
    let row_h = router.1.max(outside.1).max(store.1);
    let foot = ROW_Y + row_h;
    let mut router_x = MARGIN + content_w / 2.0 - router.0 / 2.0;
    let store_x = router_x - 50.0 - store.0;
    if store_x < MARGIN {
        router_x += MARGIN - store_x;
    }
    if router_x + router.0 + 70.0 + outside.0 > MARGIN + content_w {
        router_x = MARGIN + content_w - outside.0 - 70.0 - router.0;
    }
    let router_rect = Rect::new(router_x, foot - router.1, router.0, router.1);
    let store_rect = Rect::new(router_x - 50.0 - store.0, foot - store.1, store.0, store.1);
    let outside_rect = Rect::new(router_rect.right() + 70.0, foot - outside.1, outside.0, outside.1);
    let floor = router_rect.bottom() - FLOOR / 2.0;

    let racks_y = foot + BAND;
    let tallest = machines.iter().map(Machine::height).fold(60.0, f64::max);
    let rack_h = RACK_TOP + tallest + RACK_FOOT;
    let mut x = MARGIN + (content_w - racks_w) / 2.0;
    let mut racks = Vec::new();
    let mut placed = Vec::new();
    let mut ports = HashMap::new();
    let mut machines = machines.into_iter().peekable();
    for (r, rack) in scene.racks.iter().enumerate() {
        let w = rack_w(&widths[r]);
        let rect = Rect::new(x, racks_y, w, rack_h);
        let bus_y = racks_y + 34.0;
        // The router's cable meets the bus in the gap nearest the middle, clear of the
        // machines' drops.
        let n = widths[r].len();
        let junction_x = if n >= 2 {
            x + RACK_PAD + widths[r][..n / 2].iter().sum::<f64>() + (n / 2) as f64 * GAP - GAP / 2.0
        } else {
            x + RACK_PAD + widths[r].first().copied().unwrap_or(MIN_MACHINE_W) / 4.0
        };
        let junction = Point::new(junction_x, bus_y);
        racks.push((
            rect,
            Bus { from: Point::new(x + 14.0, bus_y), to: Point::new(x + w - 14.0, bus_y), junction },
        ));
        let attach = Point::new(
            router_rect.x + router_rect.w * (r + 1) as f64 / (scene.racks.len() + 1) as f64,
            router_rect.bottom(),
        );
        ports.insert(rack.name.clone(), vec![attach]);
        let mut mx = x + RACK_PAD;
        while let Some(machine) = machines.next_if(|m| m.rack == r) {
            let h = machine.height();
            let w = machine.width();
            placed.push((machine, Rect::new(mx, racks_y + RACK_TOP, w, h)));
            mx += w + GAP;
        }
        x += w + RACK_GAP;
    }
    ports.insert("outside".to_string(), vec![Point::new(router_rect.right(), floor)]);
    let pods = pod_rects(&placed);
    Layout {
        arrangement: Arrangement::Wide,
        width,
        height: racks_y + rack_h,
        title: vec![(title, Point::new(MARGIN, 34.0), TITLE_FONT)],
        router: router_rect,
        outside: outside_rect,
        store: store_rect,
        ports,
        outside_uplink: Point::new(outside_rect.x, floor),
        racks,
        rack_names: scene.racks.iter().map(|r| r.name.clone()).collect(),
        machines: placed,
        pods,
        legend: Point::new(MARGIN, racks_y + rack_h + 26.0),
        legend_width: content_w,
    }
}

fn narrow(
    scene: &Scene,
    machines: Vec<Machine>,
    machine_w: f64,
    router: (f64, f64),
    outside: (f64, f64),
    store: (f64, f64),
    title: String,
) -> Layout {
    const M: f64 = 12.0;
    const LANE: f64 = 7.0;
    // Left of the racks, a channel for the router's cables, one lane each (and the outside
    // client's); inside a rack, the bus and room for the tunnels' arcs.
    let channel = 8.0 + LANE * (scene.racks.len() + 1) as f64;
    let inner = 44.0;
    let machine_w = machine_w.max(outside.0).max(store.0);
    let rack_w = inner + machine_w + 12.0;
    let content_w = (channel + rack_w).max(router.0);
    let width = content_w + 2.0 * M;
    let rack_x = M + channel;
    let machine_x = rack_x + inner;
    let lane = |i: usize| M + 6.0 + LANE * i as f64;

    // The title, on two lines if it does not fit on one.
    let mut titles = Vec::new();
    let mut y = 30.0;
    let size = 17.0;
    if text_width(&title, size, true) <= content_w {
        titles.push((title, Point::new(M, y), size));
    } else {
        // "lab X", then the design, then the trace, each on a line of its own.
        for part in title.split(" · ") {
            titles.push((part.to_string(), Point::new(M, y), size));
            y += 22.0;
        }
        y -= 22.0;
    }
    let router_rect = Rect::new(M, y + 16.0, content_w, router.1);
    let outside_rect = Rect::new(machine_x, router_rect.bottom() + 30.0, machine_w, outside.1);
    let store_rect = Rect::new(machine_x, outside_rect.bottom() + 16.0, machine_w, store.1);
    let mut ports = HashMap::new();
    let outside_uplink = Point::new(outside_rect.x, outside_rect.y + NARROW_UPLINK);
    let out_lane = lane(scene.racks.len());
    ports.insert(
        "outside".to_string(),
        vec![Point::new(out_lane, router_rect.bottom()), Point::new(out_lane, outside_uplink.y)],
    );

    let mut y = store_rect.bottom() + 30.0;
    let mut racks = Vec::new();
    let mut placed = Vec::new();
    let mut machines = machines.into_iter().peekable();
    for (r, rack) in scene.racks.iter().enumerate() {
        let top = y;
        let bus_x = rack_x + 18.0;
        let junction = Point::new(bus_x, top + 34.0);
        ports.insert(
            rack.name.clone(),
            vec![Point::new(lane(r), router_rect.bottom()), Point::new(lane(r), junction.y)],
        );
        let mut my = top + 42.0;
        let mut last_uplink = junction.y + 10.0;
        while let Some(machine) = machines.next_if(|m| m.rack == r) {
            let h = machine.height();
            placed.push((machine, Rect::new(machine_x, my, machine_w, h)));
            last_uplink = my + NARROW_UPLINK;
            my += h + 14.0;
        }
        let bottom = my + 2.0;
        racks.push((
            Rect::new(rack_x, top, rack_w, bottom - top),
            Bus { from: junction, to: Point::new(bus_x, last_uplink), junction },
        ));
        y = bottom + 20.0;
    }
    let pods = pod_rects(&placed);
    Layout {
        arrangement: Arrangement::Narrow,
        width,
        height: y,
        title: titles,
        router: router_rect,
        outside: outside_rect,
        store: store_rect,
        ports,
        outside_uplink,
        racks,
        rack_names: scene.racks.iter().map(|r| r.name.clone()).collect(),
        machines: placed,
        pods,
        legend: Point::new(M, y + 6.0),
        legend_width: content_w,
    }
}

fn pod_rects(machines: &[(Machine, Rect)]) -> HashMap<String, Rect> {
    let mut pods = HashMap::new();
    for (machine, r) in machines {
        let top = r.y + lines_height(&machine.lines);
        for (i, pod) in machine.pods.iter().enumerate() {
            pods.insert(
                pod.name.clone(),
                Rect::new(r.x + POD_INSET, top + i as f64 * (POD_H + POD_GAP), r.w - 2.0 * POD_INSET, POD_H),
            );
        }
    }
    pods
}

/// Draws `lines` into a box at `r`, first baseline 22 below its top.
fn box_with_lines(
    canvas: &mut Canvas,
    r: Rect,
    lines: &[Line],
    class: &str,
    name: &str,
    fill: &str,
    radius: f64,
) {
    canvas.push(
        Layer::Boxes,
        &format!(
            r##"<g class="{class}" data-name="{}"><rect x="{}" y="{}" width="{}" height="{}" rx="{radius}" fill="{fill}" stroke="#495057"/>"##,
            escape(name),
            num(r.x),
            num(r.y),
            num(r.w),
            num(r.h)
        ),
    );
    for (i, line) in lines.iter().enumerate() {
        canvas.text(
            Layer::Boxes,
            r.x + PAD,
            r.y + 22.0 + i as f64 * LINE,
            FONT,
            line.bold,
            false,
            &line.text,
            "",
        );
    }
    canvas.push(Layer::Boxes, "</g>");
}

fn line(canvas: &mut Canvas, layer: Layer, points: &[Point], attrs: &str) {
    let d: Vec<String> = points.iter().map(|p| pt(*p)).collect();
    canvas.push(layer, &format!(r#"<path d="M{}" fill="none"{attrs}/>"#, d.join(" L")));
}

/// The picture in one arrangement.
pub fn draw(scene: &Scene, arrangement: Arrangement) -> Drawing {
    let l = layout(scene, arrangement);
    let mut c = Canvas::default();
    let id = arrangement.name();
    for (text, at, size) in &l.title {
        c.text(Layer::Boxes, at.x, at.y, *size, true, false, text, r#" class="title""#);
    }

    // The top row.
    box_with_lines(&mut c, l.router, &router_lines(&scene.router), "router", "router", "#e7f5ff", 8.0);
    c.mark("router");
    box_with_lines(&mut c, l.outside, &outside_lines(scene), "outside", "outside", "#fff4e6", 8.0);
    c.mark("outside");
    let store_class = match scene.store {
        StoreBox::Sqlite { .. } => "store sqlite",
        StoreBox::Etcd { .. } => "store etcd",
    };
    box_with_lines(&mut c, l.store, &store_lines(scene), store_class, "store", "#f3f0ff", 2.0);
    c.mark("store");

    // Racks: the box, the bus, the router's cable, each machine's drop and uplink.
    let wire = |c: &mut Canvas, points: &[Point], class: &str, colour: &str, width: f64| {
        line(
            c,
            Layer::Wires,
            points,
            &format!(r#" class="{class}" stroke="{colour}" stroke-width="{width}""#),
        );
    };
    for ((rect, bus), rack) in l.racks.iter().zip(&scene.racks) {
        c.push(
            Layer::Back,
            &format!(
                r##"<g class="rack" data-name="{}"><rect x="{}" y="{}" width="{}" height="{}" rx="12" fill="#f8f9fa" stroke="#ced4da"/></g>"##,
                escape(&rack.name),
                num(rect.x),
                num(rect.y),
                num(rect.w),
                num(rect.h)
            ),
        );
        let label = match arrangement {
            Arrangement::Wide => Point::new(rect.x + 14.0, rect.bottom() - 16.0),
            Arrangement::Narrow => Point::new(rect.x + 44.0, rect.y + 24.0),
        };
        let name_w = text_width(&rack.name, FONT, true) + text_width(" ", FONT, false);
        c.text(Layer::Boxes, label.x, label.y, FONT, true, false, &rack.name, "");
        let what = match arrangement {
            Arrangement::Wide => format!("{} · one L2 segment (a bridge)", rack.subnet),
            Arrangement::Narrow => rack.subnet.clone(),
        };
        c.text(Layer::Boxes, label.x + name_w, label.y, FONT, false, false, &what, "");
        line(
            &mut c,
            Layer::Wires,
            &[bus.from, bus.to],
            &format!(
                r#" class="segment" data-name="{}" stroke="{SEGMENT}" stroke-width="6" stroke-linecap="round""#,
                escape(&rack.name)
            ),
        );
        c.mark("segment");
        let mut cable = l.ports.get(&rack.name).cloned().unwrap_or_default();
        cable.push(bus.junction);
        wire(&mut c, &cable, "cable", CABLE, 2.0);
        c.mark("cable");
    }
    if let Some(port) = l.ports.get("outside") {
        let mut cable = port.clone();
        cable.push(l.outside_uplink);
        wire(&mut c, &cable, "cable", CABLE, 2.0);
    }
    let mut uplinks = Vec::new();
    for (machine, r) in &l.machines {
        let (Some(up), Some(bus)) = (l.uplink(&machine.name), l.bus_point(&machine.name)) else { continue };
        wire(&mut c, &[bus, up], "drop", CABLE, 2.0);
        uplinks.push((machine.name.clone(), up));
        if machine.lines.iter().any(|l| l.text.starts_with('★')) {
            c.mark("leader");
        }
        box_with_lines(
            &mut c,
            *r,
            &machine.lines,
            machine.kind.class(),
            &machine.name,
            machine.kind.fill(),
            8.0,
        );
        c.mark(machine.kind.mark());
        for pod in &machine.pods {
            if let Some(p) = l.pods.get(&pod.name) {
                box_with_lines(&mut c, *p, &[], "pod", &pod.name, "#ffffff", 6.0);
                c.text(Layer::Boxes, p.x + 10.0, p.y + 19.0, FONT, false, false, &pod_label(pod), "");
                c.mark("pod");
            }
        }
    }
    if scene.client {
        uplinks.push(("outside".to_string(), l.outside_uplink));
    }
    for (name, up) in &uplinks {
        c.push(
            Layer::Path,
            &format!(
                r##"<rect class="uplink" data-name="{}" data-x="{}" data-y="{}" x="{}" y="{}" width="9" height="9" fill="#495057"/>"##,
                escape(name),
                num(up.x),
                num(up.y),
                num(up.x - 4.5),
                num(up.y - 4.5)
            ),
        );
        c.mark("uplink");
    }

    // Tunnels, from uplink to uplink, arcing away from the boxes.
    let mut tunnels = Vec::new();
    for (a, b) in &scene.tunnels {
        let (Some(from), Some(to)) = (l.uplink(a), l.uplink(b)) else { continue };
        let d = pieces_d(&tunnel_pieces(&l, a, from, b, to));
        c.push(
            Layer::Tunnels,
            &format!(
                r#"<path class="tunnel" data-ends="{} {}" d="{d}" fill="none" stroke="{TUNNEL}" stroke-width="1.6" stroke-dasharray="6 4" opacity="0.6"/>"#,
                escape(a),
                escape(b),
            ),
        );
        c.mark("tunnel");
        tunnels.push(TunnelLine { ends: (a.clone(), b.clone()), from, to });
    }

    // BGP sessions, from the machine's uplink to the router.
    let sessions: Vec<&BgpSession> = scene.bgp.iter().filter(|s| l.uplink(&s.machine).is_some()).collect();
    for (i, session) in sessions.iter().enumerate() {
        let up = l.uplink(&session.machine).expect("filtered");
        let points = match arrangement {
            Arrangement::Wide => {
                let x = l.router.x + 20.0 + (l.router.w - 40.0) * (i as f64 + 0.5) / sessions.len() as f64;
                vec![up, Point::new(x, l.router.bottom())]
            }
            Arrangement::Narrow => {
                let (rack, _) = l.racks[l.machine(&session.machine).map_or(0, |(m, _)| m.rack)];
                let x = rack.x + 22.0 + 14.0 * i as f64 / sessions.len().max(2) as f64;
                vec![up, Point::new(x, up.y), Point::new(x, l.router.bottom())]
            }
        };
        line(
            &mut c,
            Layer::Sessions,
            &points,
            &format!(
                r#" class="bgp" data-name="{}" data-state="{}" stroke="{BGP}" stroke-width="2" stroke-dasharray="2 4""#,
                escape(&session.machine),
                escape(&session.state)
            ),
        );
        c.mark("bgp");
    }

    // The path: its steps along the wires, then the legend (which names what the path
    // uses), then the badges, which stay off every text, the legend's too.
    let mut segments = Vec::new();
    let mut anchors: Vec<(usize, Anchor)> = Vec::new();
    if let Some(trace) = &scene.trace {
        anchors = trace.hops.iter().enumerate().filter_map(|(n, hop)| Some((n, anchor(&l, hop)?))).collect();
        segments = steps(trace, &anchors);
        for s in &segments {
            c.mark(if s.overlay { "path-overlay" } else { "path-plain" });
        }
        for (n, _) in &anchors {
            c.mark(badge_colour(&trace.hops[*n]).1);
        }
        // Badges that meet at one place are set aside, a thin line back to their place.
        c.mark("hop-leader");
        c.mark("current");
    }
    for s in &segments {
        segment(&mut c, id, s);
    }
    let legend_bottom = legend(&mut c, &l, arrangement);
    let mut badges = Vec::new();
    if let Some(trace) = &scene.trace {
        let bounds = l.bounds().grow(-2.0);
        let bounds = Rect::new(bounds.x, bounds.y, bounds.w, bounds.h.max(legend_bottom - bounds.y));
        let mut taken = c.texts.clone();
        for (n, a) in &anchors {
            let hop = &trace.hops[*n];
            let Some(at) = place_badge(a.point, BADGE_R, 2.0, &taken, &bounds) else { continue };
            let area = Rect::around(at, BADGE_R);
            taken.push(area);
            let (colour, _) = badge_colour(hop);
            if at.distance(a.point) > BADGE_R + 2.0 {
                c.push(
                    Layer::Leaders,
                    &format!(
                        r#"<g class="leader" data-hop="{}"><path d="M{} L{}" stroke="{colour}" stroke-width="1.5"/><circle cx="{}" cy="{}" r="3" fill="{colour}"/></g>"#,
                        n + 1,
                        pt(a.point),
                        pt(at),
                        num(a.point.x),
                        num(a.point.y)
                    ),
                );
            }
            let mut markup =
                format!(r#"<g class="hop" data-hop="{}" data-place="{}">"#, n + 1, escape(&hop.place));
            let _ = write!(
                markup,
                r#"<circle class="disc" cx="{}" cy="{}" r="{BADGE_R}" fill="{colour}" stroke="white" stroke-width="1.5"/><text x="{}" y="{}" text-anchor="middle" fill="white" font-weight="bold" font-size="13">{}</text><title>{}</title></g>"#,
                num(at.x),
                num(at.y),
                num(at.x),
                num(at.y + 4.5),
                n + 1,
                escape(&hop_summary(hop))
            );
            c.push(Layer::Badges, &markup);
            badges.push((n + 1, area));
        }
    }

    let height = legend_bottom + 14.0;
    let mut markup = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="picture {id}" data-arrangement="{id}" viewBox="0 0 {} {}" width="100%" font-family="{FONT_FAMILY}" font-size="{FONT}" fill="#212529">"##,
        num(l.width),
        num(height)
    );
    let _ = write!(markup, "<title>lab {} · {}</title>", escape(&scene.lab), escape(&scene.design));
    markup.push_str(&defs(id));
    for layer in &c.layers {
        markup.push_str(layer);
    }
    markup.push_str("</svg>");
    let legend_keys = c.marks.iter().copied().filter(|k| LEGEND.iter().any(|(key, _)| key == k)).collect();
    Drawing {
        arrangement,
        width: l.width,
        height,
        texts: c.texts,
        badges,
        uplinks,
        tunnels,
        segments,
        legend: legend_keys,
        marks: c.marks,
        markup,
    }
}

fn defs(id: &str) -> String {
    let marker = |name: &str, colour: &str| {
        format!(
            r#"<marker id="{id}-{name}" viewBox="0 0 10 10" refX="8" refY="5" markerWidth="12" markerHeight="12" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>"#
        )
    };
    format!("<defs>{}{}</defs>", marker("plain", PLAIN), marker("overlay", OVERLAY))
}

/// A tunnel's line as cubic Béziers, from uplink to uplink. It leaves an uplink outwards
/// (up over the racks, or left of the column) and bends back to the other, so it crosses no
/// machine's box or text; one to the outside client rises through the gap between the
/// router and the client.
fn tunnel_pieces(l: &Layout, a: &str, from: Point, b: &str, to: Point) -> Vec<[Point; 4]> {
    if a == "outside" && b != "outside" {
        let mut pieces = tunnel_pieces(l, b, to, a, from);
        pieces.reverse();
        return pieces.into_iter().map(|[p, c1, c2, q]| [q, c2, c1, p]).collect();
    }
    match l.arrangement {
        Arrangement::Wide if b == "outside" => {
            let gap = Point::new(to.x - 35.0, l.router.bottom() + 22.0);
            let side = if from.x <= gap.x { -1.0 } else { 1.0 };
            vec![
                [from, Point::new(from.x, gap.y), Point::new(gap.x + side * 80.0, gap.y), gap],
                [gap, Point::new(gap.x - side * 20.0, gap.y), Point::new(to.x - 25.0, to.y), to],
            ]
        }
        Arrangement::Wide => {
            let rise = |p: Point, other: Point| {
                let room = ((p.y - l.router.bottom() - 14.0) / 0.75).max(20.0);
                let h = (40.0 + 0.22 * (p.x - other.x).abs()).min(room);
                Point::new(p.x, p.y - h)
            };
            vec![[from, rise(from, to), rise(to, from), to]]
        }
        Arrangement::Narrow => {
            let room = (from.x.min(to.x) - 14.0) / 0.75;
            let h = (24.0 + 0.2 * (from.y - to.y).abs()).min(room);
            vec![[from, Point::new(from.x - h, from.y), Point::new(to.x - h, to.y), to]]
        }
    }
}

fn pieces_d(pieces: &[[Point; 4]]) -> String {
    let mut d = pieces.first().map(|p| format!("M{}", pt(p[0]))).unwrap_or_default();
    for [_, c1, c2, q] in pieces {
        let _ = write!(d, " C{} {} {}", pt(*c1), pt(*c2), pt(*q));
    }
    d
}

/// Where a hop is drawn, and the way along the wires into it and out of it.
#[derive(Debug, Clone)]
struct Anchor {
    point: Point,
    entry: Vec<Point>,
    exit: Vec<Point>,
}

fn at(point: Point) -> Anchor {
    Anchor { point, entry: Vec::new(), exit: Vec::new() }
}

fn anchor(l: &Layout, hop: &Hop) -> Option<Anchor> {
    let place = hop.place.as_str();
    let ingress = hop.ingress.as_deref();
    let egress = hop.egress.as_deref();
    if let Some(pod) = l.pods.get(place) {
        return Some(at(Point::new(pod.right() - 17.0, pod.y + pod.h / 2.0)));
    }
    if place == "router" {
        let ports: Vec<&Vec<Point>> =
            [ingress, egress].into_iter().flatten().filter_map(|i| l.ports.get(i)).collect();
        let xs: Vec<f64> = ports.iter().filter_map(|p| p.first()).map(|p| p.x).collect();
        let x = if xs.is_empty() { l.router.centre().x } else { xs.iter().sum::<f64>() / xs.len() as f64 };
        let x = x.clamp(l.router.x + 18.0, l.router.right() - 18.0);
        let mut a = at(Point::new(x, l.floor()));
        if let Some(port) = ingress.and_then(|i| l.ports.get(i)) {
            a.entry = port.iter().rev().copied().collect();
            if let Some(j) = ingress.and_then(|i| junction(l, i)) {
                a.entry.insert(0, j);
            }
        }
        if let Some(port) = egress.and_then(|e| l.ports.get(e)) {
            a.exit = port.clone();
            if let Some(j) = egress.and_then(|e| junction(l, e)) {
                a.exit.push(j);
            }
        }
        return Some(a);
    }
    if place == "outside" {
        let body = Point::new(l.outside.right() - 20.0, l.outside.y + 17.0);
        let way = match l.arrangement {
            Arrangement::Wide => vec![Point::new(body.x, l.outside_uplink.y)],
            Arrangement::Narrow => top_way(&l.outside, body),
        };
        return Some(on_machine(ingress, egress, body, l.outside_uplink, way, None));
    }
    if let Some((_, bus)) = rack_named(l, place) {
        let port = |name: &str| if name == "router" { Some(bus.junction) } else { l.bus_point(name) };
        let points: Vec<Point> = [ingress, egress].into_iter().flatten().filter_map(port).collect();
        let point = if points.is_empty() {
            bus.junction
        } else {
            let n = points.len() as f64;
            let mean = Point::new(
                points.iter().map(|p| p.x).sum::<f64>() / n,
                points.iter().map(|p| p.y).sum::<f64>() / n,
            );
            match l.arrangement {
                Arrangement::Wide => Point::new(mean.x, bus.from.y),
                Arrangement::Narrow => Point::new(bus.from.x, mean.y),
            }
        };
        return Some(at(point));
    }
    let (_, r) = l.machine(place)?;
    let uplink = l.uplink(place)?;
    let body = Point::new(r.right() - 20.0, r.y + 17.0);
    let way = match l.arrangement {
        Arrangement::Wide => vec![Point::new(body.x, r.y)],
        Arrangement::Narrow => top_way(r, body),
    };
    Some(on_machine(ingress, egress, body, uplink, way, l.bus_point(place)))
}

/// From a narrow arrangement's machine's body point to its uplink: up, and along the top of
/// the box, above its text.
fn top_way(r: &Rect, body: Point) -> Vec<Point> {
    vec![Point::new(body.x, r.y + 3.0), Point::new(r.x, r.y + 3.0)]
}

/// A hop on a machine: at its uplink when the packet leaves (or arrives and leaves) by eth0,
/// else at its body point, right of its name; `way` runs from the body point to the uplink
/// clear of the text, `bus` is where the machine's drop meets its rack's bus.
fn on_machine(
    ingress: Option<&str>,
    egress: Option<&str>,
    body: Point,
    uplink: Point,
    way: Vec<Point>,
    bus: Option<Point>,
) -> Anchor {
    let bus: Vec<Point> = bus.into_iter().collect();
    match (ingress == Some("eth0"), egress == Some("eth0")) {
        (true, true) => Anchor { point: uplink, entry: bus.clone(), exit: bus },
        (false, true) => Anchor { point: uplink, entry: [vec![body], way].concat(), exit: bus },
        (true, false) => {
            let back: Vec<Point> = way.into_iter().rev().collect();
            Anchor { point: body, entry: [bus, vec![uplink], back].concat(), exit: Vec::new() }
        }
        (false, false) => at(body),
    }
}

fn rack_named<'a>(l: &'a Layout, name: &str) -> Option<&'a (Rect, Bus)> {
    l.rack_names.iter().position(|n| n == name).and_then(|i| l.racks.get(i))
}

fn junction(l: &Layout, rack: &str) -> Option<Point> {
    rack_named(l, rack).map(|(_, bus)| bus.junction)
}

/// The steps between consecutive hops drawn, along the wires. A stretch of wire that the
/// path took before is drawn beside the earlier one (a lane further out each time), so a
/// packet that goes out and comes back the same way shows both ways.
fn steps(trace: &Trace, anchors: &[(usize, Anchor)]) -> Vec<Segment> {
    const LANE: f64 = 8.0;
    // Stretches taken so far, by their ends as printed, with how often.
    type Stretch = ((i64, i64), (i64, i64));
    let mut used: HashMap<Stretch, usize> = HashMap::new();
    let mut segments = Vec::new();
    for pair in anchors.windows(2) {
        let [(i, a), (j, b)] = pair else { continue };
        let mut points = vec![a.point];
        points.extend(&a.exit);
        points.extend(&b.entry);
        points.push(b.point);
        points.dedup_by(|p, q| p.key() == q.key());
        if points.len() < 2 {
            continue;
        }
        // Each stretch's shift: across it, to the same side whichever way it is taken.
        let shifts: Vec<(f64, f64)> = points
            .windows(2)
            .map(|edge| {
                let (p, q) =
                    if edge[0].key() <= edge[1].key() { (edge[0], edge[1]) } else { (edge[1], edge[0]) };
                let lane = used.entry((p.key(), q.key())).or_insert(0);
                let shift = LANE * *lane as f64;
                *lane += 1;
                let (dx, dy) = (q.x - p.x, q.y - p.y);
                let length = (dx * dx + dy * dy).sqrt().max(1e-9);
                (dy / length * shift, -dx / length * shift)
            })
            .collect();
        // A corner moves with the stretches either side of it that moved.
        let shifted: Vec<Point> = points
            .iter()
            .enumerate()
            .map(|(k, p)| {
                let near: Vec<(f64, f64)> = [k.checked_sub(1), (k < shifts.len()).then_some(k)]
                    .into_iter()
                    .flatten()
                    .map(|e| shifts[e])
                    .filter(|(x, y)| *x != 0.0 || *y != 0.0)
                    .collect();
                if near.is_empty() {
                    return *p;
                }
                let n = near.len() as f64;
                Point::new(
                    p.x + near.iter().map(|s| s.0).sum::<f64>() / n,
                    p.y + near.iter().map(|s| s.1).sum::<f64>() / n,
                )
            })
            .collect();
        let overlay = trace.hops[*i].header.outer.is_some() && trace.hops[*j].header.outer.is_some();
        segments.push(Segment { hop: i + 1, to: j + 1, overlay, points: shifted });
    }
    segments
}

fn segment(c: &mut Canvas, id: &str, s: &Segment) {
    let d: Vec<String> = s.points.iter().map(|p| pt(*p)).collect();
    let d = format!("M{}", d.join(" L"));
    let class = if s.overlay { "overlay" } else { "plain" };
    let mut markup = format!(
        r#"<g class="seg {class}" data-hop="{}" data-to="{}"><path class="halo" d="{d}" fill="none" stroke="{HALO}" stroke-width="18" stroke-linecap="round" stroke-linejoin="round" opacity="0"/>"#,
        s.hop, s.to
    );
    if s.overlay {
        let _ = write!(
            markup,
            r#"<path class="pipe" d="{d}" fill="none" stroke="{OVERLAY}" stroke-width="8" stroke-linejoin="round" marker-end="url(#{id}-overlay)"/><path class="core" d="{d}" fill="none" stroke="white" stroke-width="2.5" stroke-dasharray="7 5"/>"#
        );
    } else {
        let _ = write!(
            markup,
            r#"<path class="line" d="{d}" fill="none" stroke="{PLAIN}" stroke-width="4" stroke-linejoin="round" marker-end="url(#{id}-plain)"/>"#
        );
    }
    markup.push_str("</g>");
    c.push(Layer::Path, &markup);
}

/// A badge's colour, and the legend's entry for it.
fn badge_colour(hop: &Hop) -> (&'static str, &'static str) {
    match (&hop.fate, hop.seen) {
        (Fate::Drop(_), _) | (_, Some(false)) => (STOP, "hop-stop"),
        _ if hop.header.outer.is_some() => (OVERLAY, "hop-overlay"),
        _ => (PLAIN, "hop"),
    }
}

fn hop_summary(hop: &Hop) -> String {
    let mut text = format!("{}: {} → {}", hop.place, hop.header.src, hop.header.dst);
    if let Some(outer) = &hop.header.outer {
        text += &format!(" in {} → {} (UDP {}, VNI {})", outer.src, outer.dst, outer.udp_port, outer.vni);
    }
    text
}

/// Every kind of line and mark the picture may draw, with what it means, in the legend's
/// order. The legend shows those the drawing has.
pub const LEGEND: [(&str, &str); 20] = [
    ("router", "router"),
    ("outside", "outside client"),
    ("store", "store"),
    ("node", "node, its pods inside"),
    ("gateway", "gateway: joins the overlay"),
    ("etcd", "etcd member"),
    ("leader", "etcd leader"),
    ("pod", "pod"),
    ("cable", "cable"),
    ("segment", "rack segment: a bridge, one L2 network"),
    ("uplink", "uplink eth0: the machine's address"),
    ("tunnel", "VXLAN tunnel between two uplinks (UDP 8472)"),
    ("bgp", "BGP session with the router"),
    ("path-plain", "the traced packet, plain"),
    ("path-overlay", "the traced packet inside VXLAN (outer header)"),
    ("hop", "hop n of the trace"),
    ("hop-overlay", "hop n, the packet encapsulated"),
    ("hop-stop", "hop n: the packet stops, or the probe was not seen"),
    ("hop-leader", "a badge set aside, and where its hop is"),
    ("current", "the hop and step on the slide shown"),
];

/// Draws the legend below the racks; returns its bottom.
fn legend(c: &mut Canvas, l: &Layout, arrangement: Arrangement) -> f64 {
    const ROW: f64 = 26.0;
    const GLYPH: f64 = 36.0;
    let id = arrangement.name();
    let left = l.legend.x;
    let right = l.legend.x + l.legend_width;
    let mut x = left;
    let mut y = l.legend.y + 10.0;
    c.push(Layer::Legend, r#"<g class="legend">"#);
    let heading = "Legend";
    c.text(Layer::Legend, x, y + 5.0, 13.0, true, false, heading, "");
    x += text_width(heading, 13.0, true) + 18.0;
    let entries: Vec<(&str, &str)> =
        LEGEND.iter().copied().filter(|(key, _)| c.marks.contains(key)).collect();
    for (key, text) in entries {
        let w = GLYPH + 8.0 + text_width(text, 13.0, false) + 22.0;
        if x + w > right && x > left {
            x = left;
            y += ROW;
        }
        c.push(Layer::Legend, &format!(r#"<g class="legend-entry" data-entry="{key}">"#));
        let (gx, gy) = (x, y);
        let swatch = |fill: &str, rx: f64| {
            format!(
                r##"<rect x="{}" y="{}" width="30" height="16" rx="{rx}" fill="{fill}" stroke="#495057"/>"##,
                num(gx + 3.0),
                num(gy - 8.0)
            )
        };
        let stroke = |colour: &str, width: f64, extra: &str| {
            format!(
                r#"<path d="M{},{} L{},{}" fill="none" stroke="{colour}" stroke-width="{width}"{extra}/>"#,
                num(gx),
                num(gy),
                num(gx + GLYPH - 4.0),
                num(gy)
            )
        };
        let glyph = match key {
            "router" => swatch("#e7f5ff", 4.0),
            "outside" => swatch("#fff4e6", 4.0),
            "store" => swatch("#f3f0ff", 1.0),
            "node" => swatch(Kind::Node.fill(), 4.0),
            "gateway" => swatch(Kind::Gateway.fill(), 4.0),
            "etcd" => swatch(Kind::Etcd.fill(), 4.0),
            "pod" => swatch("#ffffff", 4.0),
            "cable" => stroke(CABLE, 2.0, ""),
            "segment" => stroke(SEGMENT, 6.0, r#" stroke-linecap="round""#),
            "uplink" => format!(
                r##"<rect x="{}" y="{}" width="9" height="9" fill="#495057"/>"##,
                num(gx + 13.5),
                num(gy - 4.5)
            ),
            "tunnel" => stroke(TUNNEL, 1.6, r#" stroke-dasharray="6 4" opacity="0.6""#),
            "bgp" => stroke(BGP, 2.0, r#" stroke-dasharray="2 4""#),
            "path-plain" => stroke(PLAIN, 4.0, &format!(r#" marker-end="url(#{id}-plain)""#)),
            "path-overlay" => {
                stroke(OVERLAY, 8.0, &format!(r#" marker-end="url(#{id}-overlay)""#))
                    + &stroke("white", 2.5, r#" stroke-dasharray="7 5""#)
            }
            "current" => stroke(HALO, 14.0, r#" stroke-linecap="round""#) + &stroke(PLAIN, 4.0, ""),
            "hop-leader" => format!(
                r#"<path d="M{},{} L{},{}" stroke="{PLAIN}" stroke-width="1.5"/><circle cx="{}" cy="{}" r="3" fill="{PLAIN}"/><circle cx="{}" cy="{}" r="6" fill="{PLAIN}"/>"#,
                num(gx + 4.0),
                num(gy + 4.0),
                num(gx + GLYPH - 8.0),
                num(gy - 3.0),
                num(gx + 4.0),
                num(gy + 4.0),
                num(gx + GLYPH - 8.0),
                num(gy - 3.0)
            ),
            _ => String::new(),
        };
        c.push(Layer::Legend, &glyph);
        let centre = Point::new(gx + 18.0, gy);
        match key {
            "hop" | "hop-overlay" | "hop-stop" => {
                let colour = match key {
                    "hop" => PLAIN,
                    "hop-overlay" => OVERLAY,
                    _ => STOP,
                };
                c.push(
                    Layer::Legend,
                    &format!(
                        r#"<circle cx="{}" cy="{}" r="{BADGE_R}" fill="{colour}"/>"#,
                        num(centre.x),
                        num(centre.y)
                    ),
                );
                c.text(Layer::Legend, centre.x, centre.y + 4.5, 13.0, true, true, "n", r#" fill="white""#);
            }
            "leader" => c.text(Layer::Legend, centre.x, centre.y + 6.0, 16.0, true, true, "★", ""),
            _ => {}
        }
        c.text(Layer::Legend, gx + GLYPH + 8.0, gy + 5.0, 13.0, false, false, text, "");
        c.push(Layer::Legend, "</g>");
        x += w;
    }
    c.push(Layer::Legend, "</g>");
    y + 14.0
}

impl Drawing {
    /// The drawing as an SVG element (a document of its own, or part of a page).
    pub fn svg(&self) -> &str {
        &self.markup
    }
}

/// The picture as an SVG document: the wide arrangement, scaling to whatever shows it.
pub fn svg(scene: &Scene) -> String {
    draw(scene, Arrangement::Wide).markup
}

/// A page with the picture and, for a trace, one slide per hop (its header and the kernel
/// entries that decided), stepped through with buttons, the arrow keys or a click on a hop;
/// `#hop=N` in the address opens hop N. The picture fills the window's width; below a width
/// where the wide arrangement's text would be too small, the narrow one shows instead.
/// Nothing is fetched: styles, script and data are inline.
pub fn html(scene: &Scene) -> String {
    let wide = draw(scene, Arrangement::Wide);
    let narrow = draw(scene, Arrangement::Narrow);
    // The wide drawing's text stays at 10 px or more above this width (and the page's
    // padding).
    let breakpoint = (wide.width * 10.0 / FONT).ceil() as i64 + 24;
    let narrow_max = (narrow.width * 1.6).ceil() as i64;
    // Inside <script>: neither a closing tag nor a comment opener may appear.
    let data = serde_json::to_string(&scene.trace)
        .expect("a trace serialises")
        .replace("</", "<\\/")
        .replace("<!--", "<\\!--");
    let title = match &scene.trace {
        Some(t) => format!("lab {}: {} → {}", scene.lab, t.from, t.to),
        None => format!("lab {}", scene.lab),
    };
    let title = escape(&title);
    format!(
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: {FONT_FAMILY}; margin: 0; padding: 10px 12px; color: #212529; }}
#controls .hint {{ color: #495057; font-size: clamp(13px, 0.9vw, 16px); }}
.picture svg.picture {{ display: block; width: 100%; height: auto; }}
.picture svg.wide {{ max-height: 80vh; }}
.picture svg.narrow {{ display: none; max-width: {narrow_max}px; margin: 0 auto; }}
@media (max-width: {breakpoint}px) {{
  .picture svg.wide {{ display: none; }}
  .picture svg.narrow {{ display: block; }}
}}
#panel {{ position: sticky; bottom: 0; background: rgba(255, 255, 255, 0.96); padding: 6px 0 4px; max-height: 45vh; overflow: auto; }}
#panel:empty {{ display: none; }}
#controls button {{ font-size: clamp(14px, 1vw, 17px); padding: 3px 12px; }}
#where {{ font-size: clamp(14px, 1vw, 17px); margin: 0 8px; }}
#slides {{ list-style: none; margin: 6px 0 0; padding: 0; }}
#slides .slide {{ display: none; border: 1px solid #ced4da; border-left: 6px solid {PLAIN}; border-radius: 6px; padding: 6px 12px; }}
#slides .slide.overlay {{ border-left-color: {OVERLAY}; }}
#slides .slide.current {{ display: block; }}
#slides code {{ display: block; white-space: pre-wrap; overflow-wrap: anywhere; font-size: clamp(12px, 0.85vw, 15px); }}
#slides .stop {{ color: #c92a2a; font-weight: bold; }}
g.hop {{ cursor: pointer; }}
g.hop.current .disc {{ stroke: #000; stroke-width: 3.5; }}
svg.picture.tracing g.seg {{ opacity: 0.35; }}
svg.picture.tracing g.seg.current {{ opacity: 1; }}
g.seg.current .halo {{ opacity: 0.9; }}
</style></head>
<body>
<div class="picture">
{wide}
{narrow}
</div>
<div id="panel"><div id="controls"></div><ol id="slides"></ol></div>
<script>
const TRACE = {data};
(function () {{
  if (!TRACE) {{ document.getElementById('panel').remove(); return; }}
  const slides = document.getElementById('slides');
  TRACE.hops.forEach((hop, i) => {{
    const li = document.createElement('li');
    li.className = 'slide' + (hop.header.outer ? ' overlay' : '');
    li.dataset.hop = i + 1;
    const h = hop.header;
    let text = `${{i + 1}}. ${{hop.place}}  (${{hop.ingress ? 'in ' + hop.ingress : 'starts here'}}${{hop.egress ? ', out ' + hop.egress : ''}})${{h.outer ? '  · inside VXLAN' : ''}}\n`;
    text += `packet  ${{h.src}} → ${{h.dst}}` + (h.src_mac ? `   ${{h.src_mac}} → ${{h.dst_mac || '(unresolved)'}}` : '') + '\n';
    if (h.outer) text += `outer   ${{h.outer.src}} → ${{h.outer.dst}}  UDP ${{h.outer.udp_port}}  VNI ${{h.outer.vni}}\n`;
    hop.decided_by.forEach(d => text += d + '\n');
    if (hop.seen !== null) text += hop.seen ? 'probe seen here\n' : 'probe NOT seen here\n';
    const code = document.createElement('code');
    code.textContent = text;
    li.appendChild(code);
    if (hop.fate !== 'forward') {{
      const fate = document.createElement('div');
      fate.className = hop.fate === 'deliver' ? 'deliver' : 'stop';
      fate.textContent = hop.fate === 'deliver' ? 'delivered' : (hop.fate.drop ? 'stops here: ' + hop.fate.drop : 'leaves: ' + hop.fate.leave);
      li.appendChild(fate);
    }}
    slides.appendChild(li);
  }});
  let current = 0;
  const show = (n) => {{
    current = Math.max(0, Math.min(TRACE.hops.length - 1, n));
    const hop = current + 1;
    document.querySelectorAll('#slides .slide').forEach((s, i) => s.classList.toggle('current', i === current));
    document.querySelectorAll('svg.picture').forEach(svg => {{
      svg.classList.add('tracing');
      const steps = Array.from(svg.querySelectorAll('g.seg'));
      // The step the packet takes from this hop; at the last, the step that brought it.
      let mine = steps.filter(s => Number(s.dataset.hop) === hop);
      if (!mine.length) mine = steps.filter(s => Number(s.dataset.to) === hop);
      steps.forEach(s => s.classList.toggle('current', mine.includes(s)));
      svg.querySelectorAll('g.hop').forEach(g => g.classList.toggle('current', Number(g.dataset.hop) === hop));
    }});
    document.getElementById('where').textContent = `hop ${{hop}} of ${{TRACE.hops.length}}`;
    try {{ history.replaceState(null, '', '#hop=' + hop); }} catch (e) {{}}
  }};
  const controls = document.getElementById('controls');
  controls.innerHTML = '<button id="prev">◀ previous</button><span id="where"></span><button id="next">next ▶</button> <span class="hint">or the arrow keys, or a click on a hop</span>';
  document.getElementById('prev').onclick = () => show(current - 1);
  document.getElementById('next').onclick = () => show(current + 1);
  document.addEventListener('keydown', e => {{ if (e.key === 'ArrowRight') show(current + 1); if (e.key === 'ArrowLeft') show(current - 1); }});
  document.querySelectorAll('g.hop').forEach(g => g.addEventListener('click', () => show(Number(g.dataset.hop) - 1)));
  const asked = /^#hop=(\d+)$/.exec(location.hash);
  show(asked ? Number(asked[1]) - 1 : 0);
}})();
</script>
</body></html>
"##,
        wide = wide.svg(),
        narrow = narrow.svg(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_trace::model::{Header, Outer};

    fn node(name: &str, address: &str, subnet: &str, pods: &[(&str, &str)]) -> NodeBox {
        NodeBox {
            name: name.into(),
            address: address.into(),
            subnet: subnet.into(),
            pods: pods.iter().map(|(n, a)| PodBox { name: n.to_string(), address: a.to_string() }).collect(),
            gateway: false,
        }
    }

    fn gateway(name: &str, address: &str) -> NodeBox {
        NodeBox { gateway: true, subnet: String::new(), ..node(name, address, "", &[]) }
    }

    fn hop(place: &str, ingress: Option<&str>, egress: Option<&str>, outer: bool) -> Hop {
        Hop {
            place: place.into(),
            netns: format!("ns-{place}"),
            ingress: ingress.map(Into::into),
            egress: egress.map(Into::into),
            header: Header {
                src: "203.0.113.10".into(),
                dst: "10.244.3.1".into(),
                src_mac: None,
                dst_mac: None,
                outer: outer.then(|| Outer {
                    src: "198.18.1.201".into(),
                    dst: "198.18.2.11".into(),
                    udp_port: 8472,
                    vni: 1,
                }),
            },
            decided_by: Vec::new(),
            fate: Fate::Forward,
            seen: Some(true),
            watch: None,
        }
    }

    /// The path `weft trace` finds in a vxlan lab with two gateways, from the outside client
    /// to a pod in rack 2: in through g1, then across the overlay, past rack 1 and the
    /// router twice each.
    fn through_a_gateway() -> Trace {
        let mut hops = vec![
            hop("outside", None, Some("eth0"), false),
            hop("router", Some("outside"), Some("rack1"), false),
            hop("rack1", Some("router"), Some("g1"), false),
            hop("g1", Some("eth0"), Some("weft.1"), false),
            hop("g1", None, Some("eth0"), true),
            hop("rack1", Some("g1"), Some("router"), true),
            hop("router", Some("rack1"), Some("rack2"), true),
            hop("rack2", Some("router"), Some("n3"), true),
            hop("n3", Some("eth0"), Some("wv1"), true),
            hop("n3-p1", Some("eth0"), None, false),
        ];
        hops.last_mut().unwrap().fate = Fate::Deliver;
        Trace {
            from: "outside".into(),
            to: "n3-p1".into(),
            src: "203.0.113.10".into(),
            dst: "10.244.3.1".into(),
            hops,
            delivered: true,
            verified: Some(true),
        }
    }

    fn scene() -> Scene {
        let racks = vec![
            RackBox {
                name: "rack1".into(),
                subnet: "198.18.1.0/24".into(),
                nodes: vec![
                    node(
                        "n1",
                        "198.18.1.11",
                        "10.244.1.0/24",
                        &[("n1-p1", "10.244.1.1"), ("n1-p2", "10.244.1.2")],
                    ),
                    node(
                        "n2",
                        "198.18.1.12",
                        "10.244.2.0/24",
                        &[("n2-p1", "10.244.2.1"), ("n2-p2", "10.244.2.2")],
                    ),
                    gateway("g1", "198.18.1.201"),
                ],
                etcd: Vec::new(),
            },
            RackBox {
                name: "rack2".into(),
                subnet: "198.18.2.0/24".into(),
                nodes: vec![
                    node(
                        "n3",
                        "198.18.2.11",
                        "10.244.3.0/24",
                        &[("n3-p1", "10.244.3.1"), ("n3-p2", "10.244.3.2")],
                    ),
                    node(
                        "n4",
                        "198.18.2.12",
                        "10.244.4.0/24",
                        &[("n4-p1", "10.244.4.1"), ("n4-p2", "10.244.4.2")],
                    ),
                    gateway("g2", "198.18.2.202"),
                ],
                etcd: Vec::new(),
            },
        ];
        let machines = ["g1", "g2", "n1", "n2", "n3", "n4"];
        let mut tunnels = Vec::new();
        for (i, a) in machines.iter().enumerate() {
            for b in &machines[i + 1..] {
                tunnels.push((a.to_string(), b.to_string()));
            }
        }
        let next_hop = |address: &str, member: &str, interface: &str| NextHop {
            address: Some(address.into()),
            member: Some(member.into()),
            interface: Some(interface.into()),
        };
        Scene {
            lab: "t".into(),
            design: "vxlan mode with 2 gateways".into(),
            racks,
            router: RouterBox {
                asn: Some(65000),
                daemon: Some("bird".into()),
                interfaces: vec![
                    ("rack1".into(), "198.18.1.1/24".into()),
                    ("rack2".into(), "198.18.2.1/24".into()),
                    ("outside".into(), "203.0.113.1/24".into()),
                ],
                pod_network: "10.244.0.0/16".into(),
                routes: vec![PodRoute {
                    destination: "10.244.0.0/16".into(),
                    next_hops: vec![
                        next_hop("198.18.1.201", "g1", "rack1"),
                        next_hop("198.18.2.202", "g2", "rack2"),
                    ],
                }],
                unread: None,
            },
            outside: "203.0.113.10".into(),
            client: false,
            store: StoreBox::Sqlite { path: "/run/weft-lab/t/store.db".into() },
            tunnels,
            bgp: ["g1", "g2"]
                .iter()
                .map(|g| BgpSession {
                    machine: g.to_string(),
                    asn: 65100,
                    peer_asn: 65000,
                    state: "established".into(),
                })
                .collect(),
            trace: Some(through_a_gateway()),
        }
    }

    const BOTH: [Arrangement; 2] = [Arrangement::Wide, Arrangement::Narrow];

    #[test]
    fn every_machine_and_pod_is_drawn_with_its_addresses() {
        let mut scene = scene();
        scene.trace = None;
        let picture = svg(&scene);
        for name in ["n1", "n1-p1", "n1-p2", "g1", "router", "outside", "rack1", "store"] {
            assert!(picture.contains(&format!("data-name=\"{name}\"")), "{name}");
        }
        assert!(picture.contains("pods 10.244.1.0/24") && picture.contains("n1-p2 · 10.244.1.2"));
        assert!(picture.contains(r#"class="tunnel" data-ends="g1 g2""#));
        assert!(picture.contains(r#"class="bgp" data-name="g1" data-state="established""#));
        assert!(!picture.contains("class=\"hop\""), "no trace, no path");
        assert!(picture.contains(r#"width="100%""#) && picture.contains("viewBox=\"0 0 "), "it scales");
    }

    #[test]
    fn the_router_shows_its_as_interfaces_and_every_ecmp_next_hop() {
        let scene = scene();
        for arrangement in BOTH {
            let picture = draw(&scene, arrangement);
            let svg = picture.svg();
            assert!(svg.contains("router · AS 65000 · BGP by bird"), "{arrangement:?}");
            for address in ["198.18.1.1/24", "198.18.2.1/24", "203.0.113.1/24"] {
                assert!(svg.contains(address), "{arrangement:?}: {address}");
            }
            assert!(svg.contains("10.244.0.0/16: ECMP, 2 next hops"));
            assert!(
                svg.contains("→ via 198.18.1.201 (g1) on rack1")
                    && svg.contains("→ via 198.18.2.202 (g2) on rack2")
            );
            assert!(svg.contains("BGP AS 65100 · established"), "the gateways' side of the sessions");
        }
        let mut quiet = scene.clone();
        quiet.router = RouterBox { pod_network: "10.244.0.0/16".into(), ..Default::default() };
        let svg = svg(&quiet);
        assert!(svg.contains("router · no BGP") && svg.contains("no route into 10.244.0.0/16"));
    }

    #[test]
    fn the_store_is_drawn_the_sqlite_file_or_each_etcd_member_on_its_rack() {
        let scene = scene();
        assert!(svg(&scene).contains("/run/weft-lab/t/store.db") && svg(&scene).contains("store sqlite"));
        let mut etcd = scene.clone();
        etcd.store = StoreBox::Etcd { members: 3, leader: Some("etcd2".into()) };
        etcd.racks[0].etcd = vec![
            EtcdBox { name: "etcd1".into(), address: "198.18.1.101".into(), leader: false },
            EtcdBox { name: "etcd3".into(), address: "198.18.1.103".into(), leader: false },
        ];
        etcd.racks[1].etcd =
            vec![EtcdBox { name: "etcd2".into(), address: "198.18.2.102".into(), leader: true }];
        for arrangement in BOTH {
            let picture = draw(&etcd, arrangement);
            let svg = picture.svg();
            for (name, address) in
                [("etcd1", "198.18.1.101"), ("etcd2", "198.18.2.102"), ("etcd3", "198.18.1.103")]
            {
                assert!(svg.contains(&format!(r#"class="etcd" data-name="{name}""#)), "{name}");
                assert!(svg.contains(&format!("{name} · {address}")), "{name}");
            }
            assert_eq!(svg.matches("★ leader").count(), 1, "one leader");
            assert!(svg.contains("store · etcd, 3 members") && svg.contains("leader: etcd2"));
            assert!(picture.legend.contains(&"etcd") && picture.legend.contains(&"leader"));
            // etcd2 is drawn inside rack2's box.
            let l = layout(&etcd, arrangement);
            let (rack2, _) = l.racks[1];
            let (_, box2) = l.machine("etcd2").unwrap();
            assert!(rack2.contains(box2), "{arrangement:?}");
        }
    }

    #[test]
    fn the_legend_explains_every_line_and_mark_drawn() {
        let scene = scene();
        for arrangement in BOTH {
            let picture = draw(&scene, arrangement);
            for mark in &picture.marks {
                assert!(picture.legend.contains(mark), "{arrangement:?}: {mark} is drawn but not explained");
                assert!(picture.svg().contains(&format!(r#"data-entry="{mark}""#)), "{mark}");
            }
            for expected in [
                "cable",
                "segment",
                "uplink",
                "tunnel",
                "bgp",
                "path-plain",
                "path-overlay",
                "hop",
                "hop-overlay",
                "hop-leader",
                "current",
            ] {
                assert!(picture.marks.contains(expected), "{arrangement:?}: {expected}");
            }
            assert!(!picture.marks.contains("hop-stop"), "nothing stops on this path");
        }
        let mut stopped = scene.clone();
        stopped.trace.as_mut().unwrap().hops[9].seen = Some(false);
        assert!(draw(&stopped, Arrangement::Wide).legend.contains(&"hop-stop"));
        let mut bare = scene;
        bare.trace = None;
        bare.tunnels.clear();
        let picture = draw(&bare, Arrangement::Wide);
        assert!(
            !picture.legend.contains(&"tunnel") && !picture.legend.contains(&"hop"),
            "only what is drawn"
        );
    }

    /// A cubic Bézier's point at `t`.
    fn bezier(p: [Point; 4], t: f64) -> Point {
        let u = 1.0 - t;
        let (a, b, c, d) = (u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t);
        Point::new(
            a * p[0].x + b * p[1].x + c * p[2].x + d * p[3].x,
            a * p[0].y + b * p[1].y + c * p[2].y + d * p[3].y,
        )
    }

    #[test]
    fn tunnels_run_between_uplinks_and_through_no_box() {
        let mut scene = scene();
        scene.client = true;
        scene.tunnels.push(("n1".into(), "outside".into()));
        for arrangement in BOTH {
            let picture = draw(&scene, arrangement);
            let l = layout(&scene, arrangement);
            assert_eq!(picture.tunnels.len(), scene.tunnels.len());
            let uplink =
                |name: &str| picture.uplinks.iter().find(|(n, _)| n == name).map(|(_, p)| *p).unwrap();
            for tunnel in &picture.tunnels {
                let (a, b) = &tunnel.ends;
                assert_eq!((tunnel.from, tunnel.to), (uplink(a), uplink(b)), "{arrangement:?}: {a}–{b}");
                let pieces = tunnel_pieces(&l, a, tunnel.from, b, tunnel.to);
                assert!(
                    picture.svg().contains(&format!(r#"d="{}""#, pieces_d(&pieces))),
                    "{arrangement:?}: {a}–{b}"
                );
                assert_eq!((pieces[0][0], pieces[pieces.len() - 1][3]), (tunnel.from, tunnel.to));
                // Along its way it enters no machine, pod or box with text.
                let mut boxes: Vec<Rect> = l.machines.iter().map(|(_, r)| *r).collect();
                boxes.extend([l.router, l.store]);
                if a != "outside" && b != "outside" {
                    boxes.push(l.outside);
                }
                boxes.extend(&picture.texts);
                for i in (1..100).flat_map(|i| pieces.iter().map(move |piece| (i, piece))) {
                    let p = bezier(*i.1, i.0 as f64 / 100.0);
                    let inside = boxes.iter().find(|r| r.grow(-1.0).contains(&Rect::new(p.x, p.y, 0.0, 0.0)));
                    assert!(inside.is_none(), "{arrangement:?}: {a}–{b} passes through {inside:?} at {p:?}");
                }
            }
        }
    }

    #[test]
    fn badges_cover_no_text_and_no_other_badge() {
        // The gateway path visits the router, rack 1 and g1 twice each.
        let scene = scene();
        for arrangement in BOTH {
            let picture = draw(&scene, arrangement);
            assert_eq!(picture.badges.len(), 10, "{arrangement:?}: a badge per hop");
            for (i, (n, a)) in picture.badges.iter().enumerate() {
                for (m, b) in &picture.badges[i + 1..] {
                    assert!(!a.intersects(b), "{arrangement:?}: badges {n} and {m} overlap");
                }
                for text in &picture.texts {
                    assert!(!a.intersects(text), "{arrangement:?}: badge {n} covers text at {text:?}");
                }
                assert!(
                    Rect::new(0.0, 0.0, picture.width, picture.height).contains(a),
                    "{arrangement:?}: {n}"
                );
            }
        }
        // Crowded: every hop at one place still gets a spot of its own.
        let mut crowded = scene.clone();
        let trace = crowded.trace.as_mut().unwrap();
        trace.hops = (0..30).map(|_| hop("n1-p1", None, None, false)).collect();
        let picture = draw(&crowded, Arrangement::Wide);
        assert_eq!(picture.badges.len(), 30);
        for (i, (_, a)) in picture.badges.iter().enumerate() {
            assert!(picture.badges[i + 1..].iter().all(|(_, b)| !a.intersects(b)));
            assert!(picture.texts.iter().all(|t| !a.intersects(t)));
        }
    }

    /// Whether two polylines run on top of each other somewhere (parallel stretches on one
    /// line, overlapping by more than a unit).
    fn shares_a_stretch(a: &[Point], b: &[Point]) -> bool {
        a.windows(2).any(|e| {
            b.windows(2).any(|f| {
                let (dx, dy) = (e[1].x - e[0].x, e[1].y - e[0].y);
                let length = (dx * dx + dy * dy).sqrt();
                if length < 1e-9 {
                    return false;
                }
                let (ux, uy) = (dx / length, dy / length);
                let across = |p: Point| (p.x - e[0].x) * -uy + (p.y - e[0].y) * ux;
                let along = |p: Point| (p.x - e[0].x) * ux + (p.y - e[0].y) * uy;
                if across(f[0]).abs() > 1.0 || across(f[1]).abs() > 1.0 {
                    return false;
                }
                let (lo, hi) = (along(f[0]).min(along(f[1])), along(f[0]).max(along(f[1])));
                hi.min(length) - lo.max(0.0) > 1.0
            })
        })
    }

    #[test]
    fn encapsulated_steps_are_drawn_apart_from_plain_ones() {
        let scene = scene();
        for arrangement in BOTH {
            let picture = draw(&scene, arrangement);
            let kinds: Vec<(usize, usize, bool)> =
                picture.segments.iter().map(|s| (s.hop, s.to, s.overlay)).collect();
            assert_eq!(
                kinds,
                [
                    (1, 2, false),
                    (2, 3, false),
                    (3, 4, false),
                    (4, 5, false),
                    (5, 6, true),
                    (6, 7, true),
                    (7, 8, true),
                    (8, 9, true),
                    (9, 10, false),
                ],
                "{arrangement:?}"
            );
            let svg = picture.svg();
            assert_eq!(svg.matches(r#"<g class="seg overlay""#).count(), 4);
            assert_eq!(svg.matches(r#"<g class="seg plain""#).count(), 5);
            assert!(svg.contains(r#"<g class="seg overlay" data-hop="5" data-to="6">"#));
            // The step out of g1 and back past rack 1 (hop 6 → 7) does not lie on the step in
            // (hop 2 → 3): a lane of its own.
            for (a, b) in [(1, 5), (2, 4)] {
                let (a, b) = (&picture.segments[a], &picture.segments[b]);
                assert!(
                    !shares_a_stretch(&a.points, &b.points),
                    "{arrangement:?}: steps {}→{} and {}→{} overlap: {:?} {:?}",
                    a.hop,
                    a.to,
                    b.hop,
                    b.to,
                    a.points,
                    b.points
                );
            }
            // Steps follow the wires: from the rack's bus up the drop to g1's uplink.
            let up = picture.uplinks.iter().find(|(n, _)| n == "g1").unwrap().1;
            assert!(
                picture.segments[2].points.contains(&up),
                "{arrangement:?}: hop 3 → 4 enters g1 by its uplink"
            );
        }
    }

    #[test]
    fn the_path_crosses_no_text() {
        // Through a gateway, and from a pod through its node's uplink across racks, and from
        // the client's agent into the overlay.
        let mut scene = scene();
        let mut across = through_a_gateway();
        across.hops = vec![
            hop("n1-p1", None, Some("eth0"), false),
            hop("n1", Some("wv1"), Some("weft.1"), false),
            hop("n1", None, Some("eth0"), true),
            hop("rack1", Some("n1"), Some("router"), true),
            hop("router", Some("rack1"), Some("rack2"), true),
            hop("rack2", Some("router"), Some("n4"), true),
            hop("n4", Some("eth0"), Some("wv2"), true),
            hop("n4-p2", Some("eth0"), None, false),
        ];
        let mut client = through_a_gateway();
        client.hops = vec![
            hop("outside", None, Some("weft.1"), false),
            hop("outside", None, Some("eth0"), true),
            hop("router", Some("outside"), Some("rack1"), true),
            hop("rack1", Some("router"), Some("n2"), true),
            hop("n2", Some("eth0"), Some("wv1"), true),
            hop("n2-p1", Some("eth0"), None, false),
        ];
        scene.client = true;
        for trace in [through_a_gateway(), across, client] {
            scene.trace = Some(trace);
            for arrangement in BOTH {
                let picture = draw(&scene, arrangement);
                assert!(picture.segments.len() + 1 >= scene.trace.as_ref().unwrap().hops.len());
                for s in &picture.segments {
                    for edge in s.points.windows(2) {
                        let length = edge[0].distance(edge[1]);
                        for i in 0..=(length as usize) {
                            let t = if length > 0.0 { i as f64 / length } else { 0.0 };
                            let p = Point::new(
                                edge[0].x + t * (edge[1].x - edge[0].x),
                                edge[0].y + t * (edge[1].y - edge[0].y),
                            );
                            // The line is 4 wide (a pipe 8): half of it either side.
                            let line = Rect::around(p, if s.overlay { 4.0 } else { 2.0 });
                            let hit = picture.texts.iter().find(|t| t.intersects(&line));
                            assert!(
                                hit.is_none(),
                                "{arrangement:?}: step {}→{} at {p:?} crosses text {hit:?}",
                                s.hop,
                                s.to
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_page_shows_the_arrangement_that_fits_and_highlights_the_current_step() {
        let page = html(&scene());
        assert!(page.contains(r#"<svg xmlns="http://www.w3.org/2000/svg" class="picture wide""#));
        assert!(page.contains(r#"<svg xmlns="http://www.w3.org/2000/svg" class="picture narrow""#));
        assert!(page.contains("@media (max-width: ") && page.contains("name=\"viewport\""));
        assert!(page.contains("g.seg.current .halo") && page.contains("#hop="));
        // Marker ids do not clash between the two drawings.
        assert!(page.contains(r#"id="wide-plain""#) && page.contains(r#"id="narrow-plain""#));
    }

    #[test]
    fn the_page_is_self_contained_and_escapes_what_it_embeds() {
        let mut scene = scene();
        scene.lab = "<script>".into();
        scene.trace.as_mut().unwrap().hops[0].decided_by = vec!["</script><!--".into()];
        let page = html(&scene);
        assert_eq!(page.matches("http://").count(), 2, "only the SVG namespace, once per drawing");
        assert!(!page.contains("<script src") && !page.contains("<link"));
        assert!(
            page.contains("<title>lab &lt;script&gt;: outside → n3-p1</title>"),
            "the title is escaped too"
        );
        assert_eq!(page.matches("</script>").count(), 1, "the embedded trace does not close the script");
    }
}
