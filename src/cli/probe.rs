//! `edgecam probe`: what this machine offers and what "auto" would choose.

use anyhow::Result;

use crate::config::Config;
use crate::pipeline::encoder::{self, Availability, AUTO_ORDER};
use crate::source::{self, v4l2};

pub fn probe(config: &Config) -> Result<()> {
    gst::init()?;
    println!(
        "edgecam {}  (GStreamer {})",
        env!("CARGO_PKG_VERSION"),
        gst::version_string()
    );

    println!("\nH.264 encoders (auto tries them in this order):");
    for candidate in AUTO_ORDER {
        match encoder::availability(candidate) {
            Availability::Usable => println!("  {:<12} usable", candidate.element_name()),
            Availability::Unusable(why) => {
                println!("  {:<12} not usable: {why}", candidate.element_name())
            }
        }
    }
    match encoder::choose(config.encoder.kind, encoder::availability) {
        Ok(choice) => println!(
            "  → encoder.kind = {:?} runs {} ({})",
            config.encoder.kind,
            choice.encoder.element_name(),
            choice.reason
        ),
        Err(err) => println!("  → {err}"),
    }

    println!("\nV4L2 capture devices:");
    let devices = v4l2::capture_devices();
    if devices.is_empty() {
        println!("  none");
    }
    for device in &devices {
        println!(
            "  {:<14} {} (driver {}, {})",
            device.path, device.name, device.driver, device.bus
        );
        for name in &device.stable_names {
            println!("      also {name}");
        }
        let (usable, others): (Vec<_>, Vec<_>) = device
            .formats
            .iter()
            .partition(|f| v4l2::negotiate::usable(&f.fourcc));
        for format in usable {
            println!(
                "      {} ({}): {}",
                format.fourcc,
                format.description,
                v4l2::negotiate::describe_sizes(&format.sizes)
            );
        }
        if !others.is_empty() {
            let names: Vec<&str> = others.iter().map(|f| f.fourcc.trim()).collect();
            println!(
                "      {} more formats edgecam does not capture in: {}",
                names.len(),
                names.join(" ")
            );
        }
        match v4l2::negotiate::choose(
            device,
            config.camera.format,
            (config.camera.width, config.camera.height, config.camera.fps),
        ) {
            Ok(mode) => println!(
                "      → for {}x{}@{} edgecam would capture {mode}",
                config.camera.width, config.camera.height, config.camera.fps
            ),
            Err(err) => println!("      → {err}"),
        }
        match v4l2::controls::list(&device.path) {
            Ok(controls) if !controls.is_empty() => {
                println!("      controls:");
                for c in controls {
                    let value = c.value.map_or("-".to_owned(), |v| v.to_string());
                    println!(
                        "        {:<32} {:<8} {}..{} default {} now {}",
                        c.name, c.kind, c.minimum, c.maximum, c.default, value
                    );
                }
            }
            Ok(_) => println!("      controls: none"),
            Err(err) => println!("      controls: {err}"),
        }
    }
    if config.camera.source == crate::config::SourceKind::File {
        let path = std::path::Path::new(&config.camera.file);
        match source::file::probe(path) {
            Ok(info) => println!("\nThe camera file {}: {info}", path.display()),
            Err(err) => println!("\nThe camera file: {err:#}"),
        }
    }
    match source::resolve(&config.camera, &devices) {
        Ok(chosen) => println!(
            "  → camera.source = {:?} uses the {}",
            config.camera.source,
            chosen.describe()
        ),
        Err(err) => println!("  → {err}"),
    }
    Ok(())
}
