//! `weft lab show`: the picture of a lab, opened in a real browser (Debian's chromium,
//! headless) at two desktop window sizes and a phone's. The page must hold every node and
//! pod, the router's AS, interfaces and every ECMP next hop, the store, a legend of every
//! line and mark drawn, and every hop of the traced path with its slide; in the browser's own
//! layout no two hop badges may overlap, nor a badge any text, each tunnel must end at the
//! uplinks it joins, the drawing must follow the window's width with its text readable, and
//! each slide must highlight its hop's step. Screenshots of each page are saved next to the
//! test's build (target/tmp). Needs root and chromium.

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::lab::lab;
use weft_lab::{Mode, StoreKind};

fn chromium(args: &[&str], url: &str) -> std::process::Output {
    Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium (Debian: chromium)")
}

fn url(page: &Path) -> String {
    format!("file://{}", page.display())
}

/// The page as the browser has it once its script ran.
fn dom(args: &[&str], url: &str) -> String {
    let mut all = vec!["--dump-dom"];
    all.extend(args);
    String::from_utf8_lossy(&chromium(&all, url).stdout).into_owned()
}

/// Appended to a copy of the page, after the page's own script: measures the drawing the
/// window shows (in the browser's layout, in CSS pixels), steps through every slide, and
/// writes what it found as JSON into `<pre id="probe">`.
const PROBE: &str = r#"<script>
(function () {
  const svg = Array.from(document.querySelectorAll('svg.picture')).find(s => getComputedStyle(s).display !== 'none');
  const box = e => { const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; };
  const out = {
    window: window.innerWidth,
    arrangement: svg.dataset.arrangement,
    width: svg.getBoundingClientRect().width,
    units: svg.viewBox.baseVal.width,
    scale: svg.getScreenCTM().a,
    badges: Array.from(svg.querySelectorAll('g.hop')).map(g => ({ hop: Number(g.dataset.hop), box: box(g.querySelector('.disc')) })),
    texts: Array.from(svg.querySelectorAll('text')).filter(t => !t.closest('g.hop')).map(t => ({ text: t.textContent, box: box(t) })),
    uplinks: Object.fromEntries(Array.from(svg.querySelectorAll('rect.uplink')).map(u => [u.dataset.name, [Number(u.dataset.x), Number(u.dataset.y)]])),
    tunnels: Array.from(svg.querySelectorAll('path.tunnel')).map(p => {
      const a = p.getPointAtLength(0), b = p.getPointAtLength(p.getTotalLength());
      return { ends: p.dataset.ends.split(' '), from: [a.x, a.y], to: [b.x, b.y] };
    }),
    legend: Array.from(svg.querySelectorAll('.legend-entry')).map(e => e.dataset.entry),
    steps: [],
  };
  const hops = svg.querySelectorAll('g.hop').length;
  for (let k = 1; k <= hops; k++) {
    const current = Array.from(svg.querySelectorAll('g.seg.current'));
    out.steps.push({
      slide: Number(document.querySelector('#slides .slide.current').dataset.hop),
      badges: Array.from(svg.querySelectorAll('g.hop.current')).map(g => Number(g.dataset.hop)),
      segments: current.map(s => [Number(s.dataset.hop), Number(s.dataset.to)]),
      halo: current.map(s => Number(getComputedStyle(s.querySelector('.halo')).opacity)),
      others: Array.from(svg.querySelectorAll('g.seg:not(.current)')).map(s => Number(getComputedStyle(s).opacity)),
    });
    document.getElementById('next').click();
  }
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"#;

/// A phone: the probed page in a frame of a phone's viewport (headless windows are at least
/// 500 wide), its findings copied out.
fn phone_frame(page: &Path) -> String {
    format!(
        r#"<!doctype html><html><body style="margin:0;background:#dee2e6"><iframe id="f" src="{}" width="390" height="844" style="border:0;background:white"></iframe>
<pre id="probe"></pre>
<script>
document.getElementById('f').addEventListener('load', () => {{
  const probe = document.getElementById('f').contentDocument.getElementById('probe');
  document.getElementById('probe').textContent = probe ? probe.textContent : 'no probe';
}});
</script></body></html>"#,
        page.file_name().unwrap().to_string_lossy()
    )
}

fn probe_result(dom: &str) -> Value {
    let start = dom.rfind("<pre id=\"probe\">").expect("the probe ran") + "<pre id=\"probe\">".len();
    let end = start + dom[start..].find("</pre>").unwrap();
    let text = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("probe output {text:?}: {e}"))
}

type Box4 = (f64, f64, f64, f64);

fn box4(v: &Value) -> Box4 {
    let n = |i: usize| v[i].as_f64().unwrap();
    (n(0), n(1), n(2), n(3))
}

/// Whether two boxes share more than a sliver (half a pixel either way).
fn overlap(a: Box4, b: Box4) -> bool {
    let w = (a.0 + a.2).min(b.0 + b.2) - a.0.max(b.0);
    let h = (a.1 + a.3).min(b.1 + b.3) - a.1.max(b.1);
    w > 0.5 && h > 0.5
}

/// Everything the browser's layout must show, at one window size.
fn check_layout(title: &str, size: &str, probe: &Value, hops: usize, legend: &[&str]) {
    let at = format!("{title} at {size}");
    let entries: Vec<&str> =
        probe["legend"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    for entry in legend {
        assert!(entries.contains(entry), "{at}: the legend explains {entry} ({entries:?})");
    }
    let badges: Vec<(u64, Box4)> = probe["badges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["hop"].as_u64().unwrap(), box4(&b["box"])))
        .collect();
    assert_eq!(badges.len(), hops, "{at}: a badge per hop");
    let texts: Vec<(&str, Box4)> = probe["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["text"].as_str().unwrap(), box4(&t["box"])))
        .collect();
    for (i, (n, a)) in badges.iter().enumerate() {
        for (m, b) in &badges[i + 1..] {
            assert!(!overlap(*a, *b), "{at}: badges {n} {a:?} and {m} {b:?} overlap");
        }
        for (text, b) in &texts {
            assert!(!overlap(*a, *b), "{at}: badge {n} {a:?} covers {text:?} {b:?}");
        }
    }
    let uplinks = &probe["uplinks"];
    let tunnels = probe["tunnels"].as_array().unwrap();
    for tunnel in tunnels {
        let ends = &tunnel["ends"];
        for (end, at_end) in [(&ends[0], &tunnel["from"]), (&ends[1], &tunnel["to"])] {
            let uplink = &uplinks[end.as_str().unwrap()];
            let d = (at_end[0].as_f64().unwrap() - uplink[0].as_f64().unwrap())
                .hypot(at_end[1].as_f64().unwrap() - uplink[1].as_f64().unwrap());
            assert!(d < 0.5, "{at}: tunnel {ends} ends {d} away from {end}'s uplink {uplink}");
        }
    }
    let steps = probe["steps"].as_array().unwrap();
    assert_eq!(steps.len(), hops);
    for (k, step) in (1..).zip(steps) {
        assert_eq!(step["slide"].as_u64(), Some(k), "{at}: slide {k}");
        assert_eq!(step["badges"], serde_json::json!([k]), "{at}: slide {k} highlights its badge");
        let segments = step["segments"].as_array().unwrap();
        assert!(!segments.is_empty(), "{at}: slide {k} highlights its step");
        for segment in segments {
            let (from, to) = (segment[0].as_u64().unwrap(), segment[1].as_u64().unwrap());
            assert!(from == k || (k == hops as u64 && to == k), "{at}: slide {k} highlights {from}→{to}");
        }
        assert!(step["halo"].as_array().unwrap().iter().all(|o| o.as_f64() > Some(0.5)), "{at}: {step}");
        assert!(
            step["others"].as_array().unwrap().iter().all(|o| o.as_f64() < Some(0.5)),
            "{at}: the rest dims"
        );
    }
}

/// The width of the SVG element and of the drawing in it (which may be less, to fit the
/// window's height), in CSS pixels, its arrangement, and its text's size in pixels.
fn extent(probe: &Value) -> (f64, f64, String, f64) {
    let scale = probe["scale"].as_f64().unwrap();
    let drawing = scale * probe["units"].as_f64().unwrap();
    (
        probe["width"].as_f64().unwrap(),
        drawing,
        probe["arrangement"].as_str().unwrap().to_string(),
        14.0 * scale,
    )
}

#[test]
fn the_picture_shows_every_machine_and_the_traced_path_in_a_real_browser() {
    let pictures = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let labs: [(&str, Mode, u32, StoreKind, &str, &str); 2] = [
        ("gateways", Mode::Vxlan, 2, StoreKind::Sqlite, "outside", "n3-p1"),
        ("auto-etcd", Mode::Auto, 0, StoreKind::Etcd, "n1-p1", "n3-p2"),
    ];
    for (title, mode, gateways, store, from, to) in labs {
        let lab = lab(mode, |spec| {
            spec.gateways = gateways;
            spec.store = store;
            if store == StoreKind::Etcd {
                spec.etcd_members = 3;
            }
        });
        // The picture says what the status files say: wait until the gateways' sessions are
        // up (the lab is up when the agents have leases, which can come first).
        for g in &lab.topology().gateways {
            support::lab::wait_for(
                Duration::from_secs(20),
                || {
                    lab.status_of(&g.name)
                        .is_some_and(|s| s.bgp.iter().all(|b| b.state == "established") && !s.bgp.is_empty())
                },
                &format!("{}'s BGP session", g.name),
            );
        }
        let page = pictures.join(format!("weft-lab-{title}.html"));
        let svg = pictures.join(format!("weft-lab-{title}.svg"));
        let output = Command::new(support::WEFT)
            .args(["lab", "show", lab.name(), "--trace", from, to, "--verify", "--html"])
            .arg(&page)
            .arg("--svg")
            .arg(&svg)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let trace = lab.trace(from, to, false).unwrap();
        let hops = trace.hops.len();

        // The DOM after the page's script ran: every member, the router, the store, a
        // badge per hop in each of the two drawings, a slide per hop.
        let dom = dom(&[], &url(&page));
        let topology = lab.topology();
        let mut names: Vec<&str> = topology.nodes.iter().map(|n| n.name.as_str()).collect();
        names.extend(topology.pods.iter().map(|p| p.name.as_str()));
        names.extend(topology.gateways.iter().map(|g| g.name.as_str()));
        names.extend(topology.etcd.iter().map(|e| e.name.as_str()));
        for name in names {
            assert!(dom.contains(&format!("data-name=\"{name}\"")), "{title}: {name} is not on the page");
        }
        for pod in &lab.state.pods {
            assert!(dom.contains(&pod.address.unwrap().to_string()), "{title}: {}'s address", pod.name);
        }
        assert!(
            dom.contains(&format!("{}/24", topology.racks[0].gateway)),
            "{title}: the router's addresses"
        );
        assert_eq!(dom.matches("class=\"hop").count(), 2 * hops, "{title}: a badge per hop, in each drawing");
        assert_eq!(
            dom.matches("class=\"slide").count(),
            hops,
            "{title}: a slide per hop, built by the script"
        );
        assert_eq!(dom.matches("class=\"slide current\"").count(), 1, "{title}: the first slide shows");
        assert!(dom.contains(&format!("hop 1 of {hops}")) && dom.contains("probe seen here"), "{title}");
        let mut legend = vec![
            "cable",
            "segment",
            "uplink",
            "tunnel",
            "path-plain",
            "path-overlay",
            "hop",
            "hop-leader",
            "current",
        ];
        if gateways > 0 {
            assert_eq!(
                dom.matches("class=\"bgp\"").count(),
                4,
                "{title}: both gateways' BGP sessions, twice"
            );
            assert!(dom.contains("router · AS 65000 · BGP by bird"), "{title}: the router's AS");
            assert!(dom.contains("BGP AS 65100 · established"), "{title}: the gateways' AS and session");
            assert!(dom.contains("10.244.0.0/16: ECMP, 2 next hops"), "{title}");
            for g in &topology.gateways {
                let rack = &topology.rack(g.rack).name;
                assert!(
                    dom.contains(&format!("→ via {} ({}) on {rack}", g.ip, g.name)),
                    "{title}: {}",
                    g.name
                );
            }
            let path = lab.state.store_url.trim_start_matches("sqlite:");
            assert!(dom.contains("class=\"store sqlite\"") && dom.contains(path), "{title}: the store");
            legend.push("bgp");
        } else {
            assert!(
                dom.contains("class=\"store etcd\"") && dom.contains("store · etcd, 3 members"),
                "{title}"
            );
            assert_eq!(dom.matches("★ leader").count(), 2, "{title}: one leader, in each drawing");
            let leader = lab.etcd_leader().unwrap();
            assert!(dom.contains(&format!("leader: {leader}")), "{title}: the leader, {leader}");
            legend.extend(["etcd", "leader"]);
        }
        // The SVG alone is a picture too, and scales.
        let picture = std::fs::read_to_string(&svg).unwrap();
        assert!(picture.starts_with("<svg") && picture.matches("class=\"hop\"").count() == hops);
        assert!(picture.contains(r#"width="100%""#));

        // In the browser's layout, at two desktop sizes and a phone's.
        let probed = pictures.join(format!("weft-lab-{title}-probe.html"));
        std::fs::write(
            &probed,
            std::fs::read_to_string(&page).unwrap().replace("</body>", &format!("{PROBE}</body>")),
        )
        .unwrap();
        let mut desktop = Vec::new();
        // Two windows of one shape: the drawing scales with them, by width or (a tall
        // drawing) by height alike.
        for (w, h) in [(1920, 1200), (1600, 1000)] {
            let size = format!("{w}×{h}");
            let probe = probe_result(&self::dom(&[&format!("--window-size={w},{h}")], &url(&probed)));
            check_layout(title, &size, &probe, hops, &legend);
            let (element, drawing, arrangement, font) = extent(&probe);
            assert_eq!(arrangement, "wide", "{title} at {size}");
            assert!(
                (element - (w as f64 - 24.0)).abs() < 2.0,
                "{title} at {size}: fills the window ({element} px)"
            );
            assert!(drawing > 0.75 * element, "{title} at {size}: the drawing is {drawing} px of {element}");
            assert!(font >= 10.0, "{title} at {size}: text of {font:.1} px");
            println!("{title} at {size}: {drawing:.0} px wide, text {font:.1} px");
            desktop.push(drawing);
        }
        let ratio = desktop[1] / desktop[0];
        assert!((ratio - 1576.0 / 1896.0).abs() < 0.02, "{title}: the width follows the window ({ratio})");
        let frame = pictures.join(format!("weft-lab-{title}-phone.html"));
        std::fs::write(&frame, phone_frame(&probed)).unwrap();
        let probe = probe_result(&self::dom(
            &["--allow-file-access-from-files", "--window-size=500,900"],
            &url(&frame),
        ));
        check_layout(title, "390×844", &probe, hops, &legend);
        let (width, _, arrangement, font) = extent(&probe);
        assert_eq!(arrangement, "narrow", "{title} on a phone: one column");
        assert!(width > 340.0 && width <= 390.0, "{title} on a phone: {width} px");
        assert!(font >= 11.0, "{title} on a phone: text of {font:.1} px");
        println!("{title} on a phone: {width:.0} px wide, text {font:.1} px");

        // Screenshots, on the slide of the first hop inside VXLAN.
        let overlay = trace.hops.iter().position(|h| h.header.outer.is_some()).map_or(1, |i| i + 1);
        let phone_shot = format!(
            r#"<!doctype html><html><body style="margin:0;background:#dee2e6"><iframe src="weft-lab-{title}.html#hop={overlay}" width="390" height="844" style="border:0;background:white"></iframe></body></html>"#
        );
        let phone_page = pictures.join(format!("weft-lab-{title}-phone-shot.html"));
        std::fs::write(&phone_page, phone_shot).unwrap();
        for (name, args, at) in [
            ("1600x1000", vec!["--window-size=1600,1000"], format!("{}#hop={overlay}", url(&page))),
            ("phone", vec!["--window-size=500,900", "--allow-file-access-from-files"], url(&phone_page)),
        ] {
            let screenshot = pictures.join(format!("weft-lab-{title}-{name}.png"));
            let _ = std::fs::remove_file(&screenshot);
            let shot = format!("--screenshot={}", screenshot.display());
            let mut all = vec![shot.as_str()];
            all.extend(args);
            chromium(&all, &at);
            let size = std::fs::metadata(&screenshot).map(|m| m.len()).unwrap_or(0);
            assert!(size > 20_000, "{title}: a screenshot with something on it ({size} bytes)");
            println!("{title}: screenshot {}", screenshot.display());
        }
    }
}
