//! The lab as a picture: racks, router, outside client, nodes with their pod subnets, pods
//! with their addresses, tunnels and BGP sessions, and a traced path drawn over it with the
//! header at each hop. SVG, or a self-contained HTML page that steps through the hops like
//! slides. Pure: a [`Scene`] in, text out.

use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write;
use weft_trace::Trace;

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

#[derive(Debug, Clone, Serialize)]
pub struct RackBox {
    pub name: String,
    pub subnet: String,
    pub nodes: Vec<NodeBox>,
}

/// Everything the picture shows, read from the lab's state and its agents' status.
#[derive(Debug, Clone, Serialize)]
pub struct Scene {
    pub lab: String,
    pub design: String,
    pub racks: Vec<RackBox>,
    pub outside: String,
    /// The outside client runs the agent as a client.
    pub client: bool,
    /// VXLAN tunnels between two machines (node or gateway names, the outside client).
    pub tunnels: Vec<(String, String)>,
    /// BGP sessions to the router, by machine name, with their state.
    pub bgp: Vec<(String, String)>,
    pub trace: Option<Trace>,
}

const NODE_W: i32 = 250;
const RACK_W: i32 = NODE_W + 40;
const RACK_GAP: i32 = 50;
const POD_H: i32 = 26;
const TOP: i32 = 150;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Where each machine's box sits, to draw lines and the path between them.
struct Layout {
    width: i32,
    height: i32,
    /// name → (x, y, w, h)
    boxes: HashMap<String, (i32, i32, i32, i32)>,
}

fn node_height(node: &NodeBox) -> i32 {
    46 + node.pods.len() as i32 * (POD_H + 6)
}

fn layout(scene: &Scene) -> Layout {
    let mut boxes = HashMap::new();
    let racks = scene.racks.len().max(1) as i32;
    let width = (racks * RACK_W + (racks - 1) * RACK_GAP + 80).max(760);
    boxes.insert("router".to_string(), (width / 2 - 90, 30, 180, 56));
    boxes.insert("outside".to_string(), (width - 220, 30, 190, 56));
    let mut height = 0;
    for (r, rack) in scene.racks.iter().enumerate() {
        let x = 40 + r as i32 * (RACK_W + RACK_GAP);
        let mut y = TOP + 44;
        for node in &rack.nodes {
            let h = node_height(node);
            boxes.insert(node.name.clone(), (x + 20, y, NODE_W, h));
            for (p, pod) in node.pods.iter().enumerate() {
                boxes.insert(pod.name.clone(), (x + 34, y + 40 + p as i32 * (POD_H + 6), NODE_W - 28, POD_H));
            }
            y += h + 16;
        }
        boxes.insert(rack.name.clone(), (x, TOP, RACK_W, y - TOP));
        height = height.max(y + 20);
    }
    Layout { width, height: height.max(TOP + 100), boxes }
}

fn centre(layout: &Layout, name: &str) -> Option<(i32, i32)> {
    layout.boxes.get(name).map(|(x, y, w, h)| (x + w / 2, y + h / 2))
}

/// The picture as an SVG document.
pub fn svg(scene: &Scene) -> String {
    let l = layout(scene);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#,
        w = l.width,
        h = l.height
    );
    out.push_str(
        r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#d9480f"/></marker></defs>"##,
    );
    let _ = write!(
        out,
        r##"<text x="20" y="20" font-size="14" font-weight="bold">lab {} · {}</text>"##,
        escape(&scene.lab),
        escape(&scene.design)
    );
    // Cables: router to each rack, router to the outside client.
    let (rx, ry) = centre(&l, "router").unwrap_or_default();
    for rack in &scene.racks {
        if let Some((x, y, w, _)) = l.boxes.get(&rack.name) {
            let _ = write!(
                out,
                r##"<line class="cable" x1="{rx}" y1="{}" x2="{}" y2="{y}" stroke="#868e96" stroke-width="2"/>"##,
                ry + 28,
                x + w / 2
            );
        }
    }
    if let Some((x, y, _, h)) = l.boxes.get("outside") {
        let _ = write!(
            out,
            r##"<line class="cable" x1="{}" y1="{ry}" x2="{x}" y2="{}" stroke="#868e96" stroke-width="2"/>"##,
            rx + 90,
            y + h / 2
        );
    }
    // Boxes.
    let machine = |out: &mut String, class: &str, name: &str, lines: &[String], fill: &str| {
        if let Some((x, y, w, h)) = l.boxes.get(name) {
            let _ = write!(
                out,
                r##"<g class="{class}" data-name="{}"><rect x="{x}" y="{y}" width="{w}" height="{h}" rx="8" fill="{fill}" stroke="#495057"/>"##,
                escape(name)
            );
            for (i, line) in lines.iter().enumerate() {
                let weight = if i == 0 { " font-weight=\"bold\"" } else { "" };
                let _ = write!(
                    out,
                    r#"<text x="{}" y="{}"{weight}>{}</text>"#,
                    x + 10,
                    y + 18 + i as i32 * 16,
                    escape(line)
                );
            }
            out.push_str("</g>");
        }
    };
    machine(
        &mut out,
        "router",
        "router",
        &["router".into(), format!("BGP: {}", if scene.bgp.is_empty() { "none" } else { "yes" })],
        "#e7f5ff",
    );
    let outside = if scene.client { "outside client (weft client)" } else { "outside client" };
    machine(&mut out, "outside", "outside", &[outside.into(), scene.outside.clone()], "#fff4e6");
    for rack in &scene.racks {
        if let Some((x, y, w, h)) = l.boxes.get(&rack.name) {
            let _ = write!(
                out,
                r##"<g class="rack" data-name="{name}"><rect x="{x}" y="{y}" width="{w}" height="{h}" rx="12" fill="#f8f9fa" stroke="#adb5bd" stroke-dasharray="6 3"/><text x="{}" y="{}" font-weight="bold">{name} · {}</text></g>"##,
                x + 12,
                y + 24,
                escape(&rack.subnet),
                name = escape(&rack.name)
            );
        }
        for node in &rack.nodes {
            let (class, fill, title) = if node.gateway {
                ("node gateway", "#fff9db", format!("gateway {} · {}", node.name, node.address))
            } else {
                ("node", "#ebfbee", format!("{} · {}", node.name, node.address))
            };
            let subnet =
                if node.gateway { "joins the overlay".to_string() } else { format!("pods {}", node.subnet) };
            machine(&mut out, class, &node.name, &[title, subnet], fill);
            for pod in &node.pods {
                machine(&mut out, "pod", &pod.name, &[format!("{} · {}", pod.name, pod.address)], "#ffffff");
            }
        }
    }
    // Tunnels and sessions.
    for (a, b) in &scene.tunnels {
        if let (Some((ax, ay)), Some((bx, by))) = (centre(&l, a), centre(&l, b)) {
            let (mx, my) = ((ax + bx) / 2, (ay + by) / 2 + 40);
            let _ = write!(
                out,
                r##"<path class="tunnel" data-ends="{} {}" d="M{ax},{ay} Q{mx},{my} {bx},{by}" fill="none" stroke="#7048e8" stroke-width="1" stroke-dasharray="5 4" opacity="0.35"/>"##,
                escape(a),
                escape(b)
            );
        }
    }
    for (name, state) in &scene.bgp {
        if let Some((x, y)) = centre(&l, name) {
            let _ = write!(
                out,
                r##"<line class="bgp" data-name="{}" data-state="{}" x1="{x}" y1="{y}" x2="{rx}" y2="{}" stroke="#1971c2" stroke-width="1.5" stroke-dasharray="2 3"/>"##,
                escape(name),
                escape(state),
                ry + 28
            );
        }
    }
    // The path.
    if let Some(trace) = &scene.trace {
        // Markers sit in a box's top-right corner, clear of its text; several hops at one
        // place line up leftwards.
        let points: Vec<(usize, (i32, i32))> = trace
            .hops
            .iter()
            .enumerate()
            .filter_map(|(n, hop)| {
                let (x, y, w, h) = l.boxes.get(&hop.place)?;
                Some((n, (x + w - 16, y + (h / 2).min(15))))
            })
            .collect();
        let mut last: Option<(i32, i32)> = None;
        let mut at_place: HashMap<(i32, i32), i32> = HashMap::new();
        for (n, (x, y)) in &points {
            let k = at_place.entry((*x, *y)).or_insert(0);
            let (cx, cy) = (x - *k * 24, *y);
            *k += 1;
            if let Some((px, py)) = last.filter(|p| *p != (cx, cy)) {
                let _ = write!(
                    out,
                    r##"<line class="path" x1="{px}" y1="{py}" x2="{cx}" y2="{cy}" stroke="#d9480f" stroke-width="3" marker-end="url(#arrow)" opacity="0.8"/>"##
                );
            }
            let hop = &trace.hops[*n];
            let colour = match (&hop.fate, hop.seen) {
                (weft_trace::Fate::Drop(_), _) | (_, Some(false)) => "#e03131",
                _ => "#d9480f",
            };
            let _ = write!(
                out,
                r##"<g class="hop" data-hop="{}" data-place="{}"><circle cx="{cx}" cy="{cy}" r="11" fill="{colour}"/><text x="{cx}" y="{}" text-anchor="middle" fill="white" font-weight="bold">{}</text><title>{}</title></g>"##,
                n + 1,
                escape(&hop.place),
                cy + 4,
                n + 1,
                escape(&hop_summary(hop))
            );
            last = Some((cx, cy));
        }
    }
    out.push_str("</svg>");
    out
}

fn hop_summary(hop: &weft_trace::Hop) -> String {
    let mut text = format!("{}: {} → {}", hop.place, hop.header.src, hop.header.dst);
    if let Some(outer) = &hop.header.outer {
        text += &format!(" in {} → {} (UDP {}, VNI {})", outer.src, outer.dst, outer.udp_port, outer.vni);
    }
    text
}

/// A page with the picture and, for a trace, one slide per hop (its header and the kernel
/// entries that decided), stepped through with buttons or the arrow keys. Nothing is
/// fetched: styles, script and data are inline.
pub fn html(scene: &Scene) -> String {
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
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; color: #212529; }}
#slides {{ margin-top: 12px; max-width: 960px; }}
#slides .slide {{ display: none; border: 1px solid #ced4da; border-radius: 8px; padding: 10px 14px; }}
#slides .slide.current {{ display: block; }}
#slides code {{ display: block; white-space: pre; font-size: 12px; }}
#slides .stop {{ color: #c92a2a; font-weight: bold; }}
g.hop.current circle {{ stroke: #000; stroke-width: 3; }}
</style></head>
<body>
<h2>{title}</h2>
{svg}
<div id="controls"></div>
<ol id="slides"></ol>
<script>
const TRACE = {data};
(function () {{
  if (!TRACE) return;
  const slides = document.getElementById('slides');
  TRACE.hops.forEach((hop, i) => {{
    const li = document.createElement('li');
    li.className = 'slide';
    li.dataset.hop = i + 1;
    const h = hop.header;
    let text = `${{hop.place}}  (${{hop.ingress ? 'in ' + hop.ingress : 'starts here'}}${{hop.egress ? ', out ' + hop.egress : ''}})\n`;
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
    document.querySelectorAll('#slides .slide').forEach((s, i) => s.classList.toggle('current', i === current));
    document.querySelectorAll('g.hop').forEach(g => g.classList.toggle('current', Number(g.dataset.hop) === current + 1));
    document.getElementById('where').textContent = `hop ${{current + 1}} of ${{TRACE.hops.length}}`;
  }};
  const controls = document.getElementById('controls');
  controls.innerHTML = '<button id="prev">◀ previous</button> <span id="where"></span> <button id="next">next ▶</button>';
  document.getElementById('prev').onclick = () => show(current - 1);
  document.getElementById('next').onclick = () => show(current + 1);
  document.addEventListener('keydown', e => {{ if (e.key === 'ArrowRight') show(current + 1); if (e.key === 'ArrowLeft') show(current - 1); }});
  document.querySelectorAll('g.hop').forEach(g => g.addEventListener('click', () => show(Number(g.dataset.hop) - 1)));
  show(0);
}})();
</script>
</body></html>
"##,
        svg = svg(scene)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene() -> Scene {
        let pod = |name: &str, address: &str| PodBox { name: name.into(), address: address.into() };
        Scene {
            lab: "t".into(),
            design: "auto mode".into(),
            racks: vec![RackBox {
                name: "rack1".into(),
                subnet: "198.18.1.0/24".into(),
                nodes: vec![
                    NodeBox {
                        name: "n1".into(),
                        address: "198.18.1.11".into(),
                        subnet: "10.244.1.0/24".into(),
                        pods: vec![pod("n1-p1", "10.244.1.1"), pod("n1-p2", "10.244.1.2")],
                        gateway: false,
                    },
                    NodeBox {
                        name: "g1".into(),
                        address: "198.18.1.201".into(),
                        subnet: String::new(),
                        pods: vec![],
                        gateway: true,
                    },
                ],
            }],
            outside: "203.0.113.10".into(),
            client: false,
            tunnels: vec![("n1".into(), "g1".into())],
            bgp: vec![("g1".into(), "established".into())],
            trace: None,
        }
    }

    #[test]
    fn every_machine_and_pod_is_drawn_with_its_addresses() {
        let picture = svg(&scene());
        for name in ["n1", "n1-p1", "n1-p2", "g1", "router", "outside", "rack1"] {
            assert!(picture.contains(&format!("data-name=\"{name}\"")), "{name}");
        }
        assert!(picture.contains("pods 10.244.1.0/24") && picture.contains("n1-p2 · 10.244.1.2"));
        assert!(picture.contains(r#"class="tunnel" data-ends="n1 g1""#));
        assert!(picture.contains(r#"class="bgp" data-name="g1" data-state="established""#));
        assert!(!picture.contains("class=\"hop\""), "no trace, no path");
    }

    #[test]
    fn the_page_is_self_contained_and_escapes_what_it_embeds() {
        let mut scene = scene();
        scene.lab = "<script>".into();
        let page = html(&scene);
        assert!(!page.contains("http://") || page.matches("http://").count() == 1, "only the SVG namespace");
        assert!(!page.contains("<script src") && !page.contains("<link"));
        assert!(page.contains("<title>lab &lt;script&gt;</title>"), "the title is escaped too");
    }
}
