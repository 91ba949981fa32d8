//! `weft lab show`: the picture of a lab, opened in a real browser (Debian's chromium,
//! headless). Every node and pod of the lab must be on the page, and every hop of the traced
//! path drawn and given its slide; a screenshot of each page is saved next to the test's
//! build (target/tmp). Needs root and chromium.

mod support;

use std::path::Path;
use std::process::Command;
use support::lab::lab;
use weft_lab::Mode;

fn chromium(args: &[&str], page: &Path) -> std::process::Output {
    Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium (Debian: chromium)")
}

#[test]
fn the_picture_shows_every_machine_and_the_traced_path_in_a_real_browser() {
    let pictures = Path::new(env!("CARGO_TARGET_TMPDIR"));
    for (title, mode, gateways, from, to) in
        [("auto", Mode::Auto, 0, "n1-p1", "n3-p2"), ("gateways", Mode::Vxlan, 2, "outside", "n4-p1")]
    {
        let lab = lab(mode, |spec| spec.gateways = gateways);
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

        // The DOM after the page's script ran.
        let dom = String::from_utf8_lossy(&chromium(&["--dump-dom"], &page).stdout).into_owned();
        let topology = lab.topology();
        let mut names: Vec<&str> = topology.nodes.iter().map(|n| n.name.as_str()).collect();
        names.extend(topology.pods.iter().map(|p| p.name.as_str()));
        names.extend(topology.gateways.iter().map(|g| g.name.as_str()));
        for name in names {
            assert!(dom.contains(&format!("data-name=\"{name}\"")), "{title}: {name} is not on the page");
        }
        for pod in &lab.state.pods {
            assert!(dom.contains(&pod.address.unwrap().to_string()), "{title}: {}'s address", pod.name);
        }
        let hops = trace.hops.len();
        assert_eq!(dom.matches("class=\"hop").count(), hops, "{title}: a marker per hop");
        assert_eq!(
            dom.matches("class=\"slide").count(),
            hops,
            "{title}: a slide per hop, built by the script"
        );
        assert_eq!(dom.matches("class=\"slide current\"").count(), 1, "{title}: the first slide shows");
        assert!(dom.contains(&format!("hop 1 of {hops}")) && dom.contains("probe seen here"), "{title}");
        if gateways > 0 {
            assert_eq!(dom.matches("class=\"bgp\"").count(), 2, "{title}: both gateways' BGP sessions");
        } else {
            assert!(dom.contains("class=\"tunnel\""), "{title}: the VXLAN tunnels");
        }
        // The SVG alone is a picture too.
        let picture = std::fs::read_to_string(&svg).unwrap();
        assert!(picture.starts_with("<svg") && picture.matches("class=\"hop\"").count() == hops);

        let screenshot = pictures.join(format!("weft-lab-{title}.png"));
        let _ = std::fs::remove_file(&screenshot);
        let shot = format!("--screenshot={}", screenshot.display());
        chromium(&[&shot, "--window-size=1000,900"], &page);
        let size = std::fs::metadata(&screenshot).map(|m| m.len()).unwrap_or(0);
        assert!(size > 20_000, "{title}: a screenshot with something on it ({size} bytes)");
        println!("{title}: screenshot {}", screenshot.display());
    }
}
