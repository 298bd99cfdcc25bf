//! SVG plots of a run, drawn with `plotters` (no external program): download time against
//! arrival time (the lecture's figures 6 and 7) and swarm size over time.

use std::path::Path;

use plotters::prelude::*;

use super::report::Report;

/// A plot that could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("plotting {path}: {message}")]
pub struct PlotError {
    path: String,
    message: String,
}

fn err(path: &Path) -> impl Fn(String) -> PlotError + '_ {
    move |message| PlotError {
        path: path.display().to_string(),
        message,
    }
}

fn title(r: &Report) -> String {
    let c = &r.config;
    let mode = match c.mode {
        super::Mode::Swarm => "swarming",
        super::Mode::ClientServer => "client-server",
    };
    let rates: Vec<String> = c
        .arrivals
        .iter()
        .map(|p| {
            if p.fixed {
                format!("one every {:.3}s", 1.0 / p.per_second)
            } else {
                format!("{:.0}/min", p.per_second * 60.0)
            }
        })
        .collect();
    format!(
        "{mode}, {} bytes, origin {:.2} Mbit/s, arrivals {}",
        c.size,
        c.seed_up as f64 * 8.0 / 1e6,
        rates.join(" then ")
    )
}

/// Download time (s) of every completed peer against its arrival time (min).
pub fn download_times(r: &Report, path: &Path) -> Result<(), PlotError> {
    let e = err(path);
    let points: Vec<(f64, f64)> = r
        .peers
        .iter()
        .filter_map(|p| p.download_s().map(|d| (p.arrival_s / 60.0, d)))
        .collect();
    let x_max = (r.config.schedule_length().as_secs_f64() / 60.0).max(1.0);
    let y_max = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.05;
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title(r), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|x| e(x.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("arrival time (min)")
        .y_desc("download time (s)")
        .draw()
        .map_err(|x| e(x.to_string()))?;
    chart
        .draw_series(
            points
                .iter()
                .map(|&(x, y)| Circle::new((x, y), 1, BLUE.mix(0.5).filled())),
        )
        .map_err(|x| e(x.to_string()))?;
    root.present().map_err(|x| e(x.to_string()))?;
    Ok(())
}

/// Leechers and lingering seeds over time.
pub fn swarm_size(r: &Report, path: &Path) -> Result<(), PlotError> {
    let e = err(path);
    let x_max = r.timeline.last().map_or(1.0, |t| t.t_s / 60.0).max(1.0);
    let y_max = r
        .timeline
        .iter()
        .map(|t| (t.leechers + t.seeds) as f64)
        .fold(1.0, f64::max)
        * 1.05;
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title(r), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|x| e(x.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("time (min)")
        .y_desc("peers")
        .draw()
        .map_err(|x| e(x.to_string()))?;
    chart
        .draw_series(LineSeries::new(
            r.timeline.iter().map(|t| (t.t_s / 60.0, t.leechers as f64)),
            &RED,
        ))
        .map_err(|x| e(x.to_string()))?
        .label("leechers")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .draw_series(LineSeries::new(
            r.timeline.iter().map(|t| (t.t_s / 60.0, t.seeds as f64)),
            &GREEN,
        ))
        .map_err(|x| e(x.to_string()))?
        .label("seeds (lingering)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(x.to_string()))?;
    root.present().map_err(|x| e(x.to_string()))?;
    Ok(())
}
